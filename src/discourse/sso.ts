/**
 * DiscourseConnect's `sync_sso`: the signed payload that creates or links an
 * account, and what its refusals mean to the operator.
 */
import { Effect } from "effect";
import type { DiscourseError } from "./errors.ts";
import { DiscourseConnectRejected } from "./errors.ts";
import type { SsoAccount } from "./schema.ts";

/**
 * The `sso` parameter of `sync_sso`: Base64 of the URL-encoded payload.
 * URLSearchParams percent-encodes everything but ASCII letters, digits and
 * `*-._`, so the Base64 input is ASCII and Discourse's Rack parser reads it.
 */
export const encodeSsoPayload = (account: SsoAccount): string => {
  const payload = new URLSearchParams();
  payload.set("external_id", account.external_id);
  payload.set("email", account.email);
  payload.set("username", account.username);
  if (account.name !== undefined) payload.set("name", account.name);
  if (account.bio !== undefined) payload.set("bio", account.bio);
  if (account.location !== undefined) payload.set("location", account.location);
  payload.set(
    "suppress_welcome_message",
    String(account.suppress_welcome_message),
  );
  return btoa(payload.toString());
};

/** Lowercase hex HMAC-SHA256 of the Base64 payload, keyed with the secret. */
export const signSsoPayload = (
  sso: string,
  secret: string,
): Effect.Effect<string> =>
  Effect.promise(async () => {
    const encoder = new TextEncoder();
    const key = await crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const signature = await crypto.subtle.sign(
      "HMAC",
      key,
      encoder.encode(sso),
    );
    return [...new Uint8Array(signature)]
      .map((byte) => byte.toString(16).padStart(2, "0")).join("");
  });

/** The form `sync_sso` takes: the payload and its signature. */
export const signedSsoForm = (
  account: SsoAccount,
  secret: string,
): Effect.Effect<Record<string, string>> => {
  const sso = encodeSsoPayload(account);
  return Effect.map(signSsoPayload(sso, secret), (sig) => ({ sso, sig }));
};

const connectAdvice =
  `discourse.ssoSecret / DISCOURSE_SSO_SECRET must equal the forum's ` +
  `discourse_connect_secret site setting (Admin > Settings > Login).`;

/** `sync_sso` cannot even be tried: there is no secret to sign with. */
export const noSsoSecret = (what: string): DiscourseConnectRejected =>
  new DiscourseConnectRejected({
    message: `Cannot ${what}: discourse.ssoSecret is not set. ${connectAdvice}`,
  });

/**
 * Refusals of `sync_sso` as a whole (a wrong secret, DiscourseConnect off)
 * become DiscourseConnectRejected: every further call would fail the same way.
 */
export const explainConnectRefusal = <A>(
  effect: Effect.Effect<A, DiscourseError>,
): Effect.Effect<A, DiscourseError> =>
  effect.pipe(
    Effect.catchTags({
      DiscourseValidationError: (error) =>
        error.errors.some((words) => /signature|base64/i.test(words))
          ? Effect.fail(
            new DiscourseConnectRejected({
              message: `Discourse rejected the DiscourseConnect ` +
                `signature (POST /admin/users/sync_sso, HTTP 422: ` +
                `"${error.errors.join("; ")}"): the secret is wrong, ` +
                `so no account can be created. ${connectAdvice}`,
            }),
          )
          : Effect.fail(error),
      // The judge reads any /admin/ 404 as bad credentials; here the
      // likelier cause is DiscourseConnect being off. A 401 or 403 is
      // the key itself, and says so.
      DiscourseCredentialsRejected: (error) =>
        error.status !== 404 ? Effect.fail(error) : Effect.fail(
          new DiscourseConnectRejected({
            message: `Discourse answered 404 to POST ` +
              `/admin/users/sync_sso: DiscourseConnect is not enabled ` +
              `on the forum (site setting enable_discourse_connect), ` +
              `or the API key is not a valid admin key. Enable ` +
              `DiscourseConnect, or remove discourse.ssoSecret to ` +
              `create accounts with POST /users.json instead.`,
          }),
        ),
    }),
  );
