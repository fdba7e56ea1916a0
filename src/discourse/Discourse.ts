import * as HttpClient from "@effect/platform/HttpClient";
import { Context, Duration, Effect, Layer, Option, Redacted } from "effect";
import { excerpt, ignoredBody, jsonBody, quoted } from "./answers.ts";
import type { DiscourseConfig } from "./config.ts";
import {
  type DiscourseError,
  DiscourseValidationError,
  DiscourseWrongAccount,
} from "./errors.ts";
import { answerLimits, makeDiscourseHttp } from "./http.ts";
import { limiterPlan, makeRateLimiter } from "./RateLimiter.ts";
import {
  type AdaptiveGate,
  makeAdaptiveGate,
  usersInFlight,
} from "./concurrency.ts";
import {
  AdminUserDetail,
  AdminUserPage,
  type AdminUserRow,
  CreateUserResponse,
  type DiscourseUser,
  EmailsResponse,
  type NewLocalAccount,
  type ProfileUpdate,
  type SsoAccount,
  SyncSsoResponse,
  UpdateResponse,
  type UserCard,
  UserCardsResponse,
  UserResponse,
} from "./schema.ts";
import { explainConnectRefusal, noSsoSecret, signedSsoForm } from "./sso.ts";
import { type GroupEndpoints, groupEndpoints } from "./groupEndpoints.ts";
import {
  type SuspensionEndpoints,
  suspensionEndpoints,
} from "./suspensionEndpoints.ts";

export type { DiscourseError } from "./errors.ts";
export type { GroupMembership } from "./groupEndpoints.ts";
export type { ForumAccountRef } from "./suspensionEndpoints.ts";

/** Discourse answers 400 to more ids in one `/user-cards.json` request. */
export const userCardsPerRequest = 50;

/** Whether two usernames name one account, as Discourse compares them. */
export const sameUsername = (a: string, b: string): boolean =>
  a === b ||
  a.normalize("NFC").toLowerCase() === b.normalize("NFC").toLowerCase();

export interface DiscourseService extends GroupEndpoints, SuspensionEndpoints {
  /** `GET /u/{username}.json?skip_track_visit=true`; 404 is None. */
  readonly userByUsername: (
    username: string,
  ) => Effect.Effect<Option.Option<DiscourseUser>, DiscourseError>;
  /** `GET /u/by-external/{id}.json`; 404 is None. */
  readonly userByExternalId: (
    externalId: string,
  ) => Effect.Effect<Option.Option<DiscourseUser>, DiscourseError>;
  /** `GET /u/{username}/emails.json`. */
  readonly emails: (
    username: string,
  ) => Effect.Effect<EmailsResponse, DiscourseError>;
  /**
   * One page (1-based, 100 rows) of `GET /admin/users/list/active.json`
   * with `show_emails=true&order=created&asc=true`, optionally filtered.
   */
  readonly adminUserPage: (
    page: number,
    filter?: { readonly filter?: string; readonly email?: string },
  ) => Effect.Effect<ReadonlyArray<AdminUserRow>, DiscourseError>;
  /** `GET /user-cards.json` for at most `userCardsPerRequest` ids. */
  readonly userCards: (
    ids: ReadonlyArray<number>,
  ) => Effect.Effect<ReadonlyArray<UserCard>, DiscourseError>;
  /** `PUT /u/{username}.json`; the user as stored after the update. */
  readonly updateProfile: (
    username: string,
    fields: ProfileUpdate,
  ) => Effect.Effect<DiscourseUser, DiscourseError>;
  /**
   * `GET /admin/users/{id}.json`: the DiscourseConnect external id the
   * account carries, or None when it has no SSO record.
   */
  readonly externalIdOf: (
    userId: number,
  ) => Effect.Effect<Option.Option<string>, DiscourseError>;
  /**
   * `POST /admin/users/sync_sso`, signed with `discourse.ssoSecret`: the
   * account Discourse created, or the one it found by SSO record or email.
   */
  readonly syncSso: (
    account: SsoAccount,
  ) => Effect.Effect<SyncSsoResponse, DiscourseError>;
  /**
   * `POST /users.json` as admin, active and approved, without a password.
   * Its `success: false` fails as DiscourseValidationError. Success does not
   * prove an account exists (a taken email also "succeeds"): read it back.
   */
  readonly createUser: (
    account: NewLocalAccount,
  ) => Effect.Effect<void, DiscourseError>;
  /** `PUT /u/{username}/preferences/email.json` (empty 200 body). */
  readonly requestEmailChange: (
    username: string,
    email: string,
  ) => Effect.Effect<void, DiscourseError>;
  /** HTTP requests sent so far by this process, retries included. */
  readonly requestsSent: Effect.Effect<number>;
  /**
   * A gate for users' turns, as wide as sending at the limit needs by the
   * forum's latency observed (Little's law), at most `cap`: see
   * concurrency.ts.
   */
  readonly userGate: (cap: number) => Effect.Effect<AdaptiveGate>;
  /** Requests Discourse answered (any status): 0 means never reached. */
  readonly requestsAnswered: Effect.Effect<number>;
}

/** Only the fields the caller set: an absent key leaves Discourse's value alone. */
const definedFields = (fields: ProfileUpdate): Record<string, string> =>
  Object.fromEntries(
    Object.entries(fields).filter(([, value]) => value !== undefined),
  );

const make = (config: DiscourseConfig) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient;
    // Server text is the only outside input in messages; a server echoing
    // the request headers back must not leak the key into a log. Scrubbed
    // after decoding and before any excerpt: a cut never leaves half a key.
    const scrub = config.scrub;
    const site = {
      baseUrl: config.url.replace(/\/+$/, ""),
      apiUser: config.apiUser,
      requestsPerMinute: config.requestsPerMinute,
      scrub,
      defaultRateLimitWaitMs: Duration.toMillis(config.defaultRateLimitWait),
      maxRateLimitWaitMs: Duration.toMillis(config.maxRateLimitWait),
      maxTotalRateLimitWaitMs: Duration.toMillis(config.maxTotalRateLimitWait),
    };
    const limiter = yield* makeRateLimiter({
      limit: config.requestsPerMinute,
      window: config.rateLimitWindow,
    });
    const { execute, requestsSent, requestsAnswered, meter } =
      yield* makeDiscourseHttp(config, client, limiter, site);
    const { intervalMs } = limiterPlan({
      limit: config.requestsPerMinute,
      window: config.rateLimitWindow,
    });

    const user = encodeURIComponent;
    /**
     * The account answered must be the account asked for. Discourse looks
     * usernames up by their NFC lower case (User.normalize_username).
     */
    const sameAccount = (username: string, asked: string, written: boolean) =>
    (
      answered: DiscourseUser,
    ): Effect.Effect<DiscourseUser, DiscourseWrongAccount> =>
      sameUsername(answered.username, username)
        ? Effect.succeed(answered)
        : Effect.fail(
          new DiscourseWrongAccount({
            asked,
            answered: `the account "${answered.username}"`,
            written,
          }),
        );
    const optionalUser = (
      effect: Effect.Effect<DiscourseUser, DiscourseError>,
    ) =>
      effect.pipe(
        Effect.map(Option.some),
        Effect.catchTag("DiscourseNotFound", () => Effect.succeedNone),
      );
    const readUser = jsonBody(UserResponse, scrub);
    const readUpdate = jsonBody(UpdateResponse, scrub);
    const readEmails = jsonBody(EmailsResponse, scrub);
    const readAdminPage = jsonBody(AdminUserPage, scrub);
    const readAdminUser = jsonBody(AdminUserDetail, scrub);
    const readCards = jsonBody(UserCardsResponse, scrub);
    const readSyncSso = jsonBody(SyncSsoResponse, scrub);
    const readCreated = jsonBody(CreateUserResponse, scrub);

    const service: DiscourseService = {
      userByUsername: (username) =>
        optionalUser(
          execute({
            what: `read user "${username}"`,
            method: "GET",
            path: `/u/${user(username)}.json`,
            query: { skip_track_visit: "true" },
          }, readUser).pipe(
            Effect.flatMap((body) =>
              sameAccount(username, `the read of user "${username}"`, false)(
                body.user,
              )
            ),
          ),
        ),
      userByExternalId: (externalId) =>
        optionalUser(
          execute({
            what: `read the user with external id "${externalId}"`,
            method: "GET",
            path: `/u/by-external/${user(externalId)}.json`,
            query: { skip_track_visit: "true" },
          }, readUser).pipe(
            Effect.flatMap((body) =>
              // The public profile carries no external id; where an answer
              // does carry one, it must be the one asked for.
              body.user.external_id === undefined ||
                body.user.external_id === null ||
                String(body.user.external_id).trim() === externalId.trim()
                ? Effect.succeed(body.user)
                : Effect.fail(
                  new DiscourseWrongAccount({
                    asked:
                      `the read of the user with external id "${externalId}"`,
                    written: false,
                    answered: `the account "${body.user.username}" ` +
                      `(external id "${String(body.user.external_id)}")`,
                  }),
                )
            ),
          ),
        ),
      emails: (username) =>
        execute({
          what: `read the emails of user "${username}"`,
          method: "GET",
          path: `/u/${user(username)}/emails.json`,
        }, readEmails),
      adminUserPage: (page, filter) =>
        execute({
          what: `list page ${page} of the active users${
            filter?.email !== undefined
              ? ` with email "${filter.email}"`
              : filter?.filter !== undefined
              ? ` matching "${filter.filter}"`
              : ""
          }`,
          method: "GET",
          path: "/admin/users/list/active.json",
          maxBytes: answerLimits.listPage,
          query: {
            show_emails: "true",
            order: "created",
            asc: "true",
            page: String(page),
            ...(filter?.filter !== undefined ? { filter: filter.filter } : {}),
            ...(filter?.email !== undefined ? { email: filter.email } : {}),
          },
        }, readAdminPage),
      userCards: (ids) =>
        execute({
          what: `read the user cards of ${ids.length} users`,
          method: "GET",
          path: "/user-cards.json",
          maxBytes: answerLimits.listPage,
          query: { user_ids: ids.join(",") },
        }, readCards).pipe(Effect.map((body) => body.users)),
      updateProfile: (username, fields) =>
        execute({
          what: `update the profile of user "${username}"`,
          method: "PUT",
          path: `/u/${user(username)}.json`,
          body: definedFields(fields),
        }, readUpdate).pipe(
          Effect.flatMap((body) =>
            sameAccount(username, `the update of user "${username}"`, true)(
              body.user,
            )
          ),
        ),
      externalIdOf: (userId) =>
        execute({
          what: `read the DiscourseConnect record of user id ${userId}`,
          method: "GET",
          path: `/admin/users/${userId}.json`,
        }, readAdminUser).pipe(
          Effect.map((detail) =>
            Option.fromNullable(detail.single_sign_on_record?.external_id).pipe(
              Option.map(String),
            )
          ),
        ),
      syncSso: (account) => {
        const what = `create or link the DiscourseConnect account of ` +
          `external id "${account.external_id}" ("${account.username}")`;
        if (config.ssoSecret === undefined) {
          return Effect.fail(noSsoSecret(what));
        }
        return signedSsoForm(account, Redacted.value(config.ssoSecret)).pipe(
          Effect.flatMap((form) =>
            execute({
              what,
              method: "POST",
              path: "/admin/users/sync_sso",
              form,
            }, readSyncSso)
          ),
          explainConnectRefusal,
        );
      },
      createUser: (account) =>
        execute({
          what: `create user "${account.username}"`,
          method: "POST",
          path: "/users.json",
          body: {
            username: account.username,
            email: account.email,
            ...(account.name === undefined ? {} : { name: account.name }),
            active: true,
            approved: true,
          },
        }, readCreated).pipe(
          Effect.flatMap((answer) => {
            if (answer.success) {
              return Effect.void;
            }
            const words = [
              ...(answer.message ? [excerpt(scrub(answer.message))] : []),
              ...Object.entries(answer.errors ?? {}).flatMap((
                [field, messages],
              ) => messages.map((m) => excerpt(scrub(`${field} ${m}`)))),
            ];
            return Effect.fail(
              new DiscourseValidationError({
                errors: words,
                message: `Discourse refused to create user ` +
                  `"${account.username}" (POST /users.json answered success ` +
                  `false: ${quoted(words)}).`,
              }),
            );
          }),
        ),
      requestEmailChange: (username, email) =>
        execute({
          what: `request an email change for user "${username}"`,
          method: "PUT",
          path: `/u/${user(username)}/preferences/email.json`,
          body: { email },
        }, ignoredBody),
      ...groupEndpoints(execute, scrub),
      ...suspensionEndpoints(execute, scrub),
      requestsSent,
      requestsAnswered,
      userGate: (cap) =>
        makeAdaptiveGate(
          Effect.map(
            meter.latencyMs,
            (latency) => usersInFlight(1 / intervalMs, latency, cap),
          ),
        ),
    };
    return service;
  });

export class Discourse extends Context.Tag("Discourse")<
  Discourse,
  DiscourseService
>() {
  /** The client for `config`; the process's one rate limiter inside. */
  static readonly layer = (
    config: DiscourseConfig,
  ): Layer.Layer<Discourse, never, HttpClient.HttpClient> =>
    Layer.effect(Discourse, make(config));
}
