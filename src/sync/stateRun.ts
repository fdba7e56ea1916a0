/**
 * The state store in a sync: before the first user, choose how to read and
 * bulk-read the forum's user cards; per user, skip the profile read when the
 * store and the bulk reads agree; after a user ends in sync, remember it
 * (an --apply run only: a dry-run never changes the store).
 */
import { Effect, Ref } from "effect";
import { Discourse, userCardsPerRequest } from "../discourse/Discourse.ts";
import type { EmailsResponse, UserCard } from "../discourse/schema.ts";
import type { StoredUser } from "../state/Store.ts";
import { OpenedStateStore } from "../state/opened.ts";
import {
  chooseReads,
  compareUser,
  desiredHash,
  forumDisagrees,
  isSettled,
  type ReadPlan,
  sameCard,
  storedCard,
  type StoreFound,
  type UserReads,
} from "./assisted.ts";
import type { UserCandidate } from "./candidate.ts";
import type { RunContext } from "./context.ts";
import type { EmailSource } from "./fetchDiscourse.ts";
import { fixedEmails } from "./forumEmails.ts";
import { Reporter } from "./Reporter.ts";
import type { ReadsSummary } from "./summary.ts";
import { carryOut, syncUser } from "./syncUser.ts";
import {
  cardAfter,
  inChunks,
  makeRemembering,
  type ToRemember,
} from "./remember.ts";
import { diffProfile } from "./diff.ts";
import {
  type MatchedBy,
  needsOwnershipCheck,
  withoutSharedEmail,
} from "./match.ts";
import type { DesiredProfile } from "./profile.ts";
import { type OwnerUnchecked, UserOutcome } from "./UserOutcome.ts";

/**
 * The store as found, how many entries it holds (each read once and found
 * readable, none kept: a run looks its users up one at a time), and how
 * this run reads.
 */
const findStore = (
  options: { readonly full: boolean; readonly force: boolean },
) =>
  Effect.gen(function* () {
    const opened = yield* OpenedStateStore;
    if (opened._tag !== "Open") {
      const found: StoreFound = opened;
      return {
        store: undefined,
        entries: 0,
        plan: chooseReads(found, options),
      };
    }
    const { store } = opened;
    const entries = yield* Effect.either(store.checkAll);
    if (entries._tag === "Left") {
      return {
        store: undefined,
        entries: 0,
        plan: chooseReads(
          { _tag: "Unavailable", error: entries.left },
          options,
        ),
      };
    }
    const found: StoreFound = {
      _tag: "Open",
      path: store.path,
      status: store.status,
      entries: entries.right,
    };
    return { store, entries: entries.right, plan: chooseReads(found, options) };
  });

const describePlan = (plan: ReadPlan, entries: number) =>
  plan._tag === "Assisted"
    ? `State-assisted run: ${entries} users known to the state store; profiles are read only where it and the forum's bulk reads disagree.`
    : `Reading every profile: ${plan.why}.`;

export const prepareStateRun = (
  ctxOptions: { readonly full: boolean; readonly force: boolean },
  toProcess: ReadonlyArray<UserCandidate>,
  run: {
    readonly concurrency: number;
    /** True once the run stops (a fatal error, a signal, the operator). */
    readonly stopped: Effect.Effect<boolean>;
  },
) =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const reporter = yield* Reporter;
    const { store, entries, plan } = yield* findStore(ctxOptions);
    yield* (plan._tag === "Full" && plan.warn ? reporter.warn : reporter.info)(
      describePlan(plan, entries),
    );
    const assisted = plan._tag === "Assisted";
    // Only the cards that differ from their entry are kept: the others are
    // the entry's snapshot again, and 100,000 of them would cost memory.
    const differing = new Map<number, UserCard>();
    const agreeing = new Set<number>();
    /**
     * A user's entry, read when needed. The whole store was read once
     * before: an entry unreadable now reads that user in full.
     */
    const entryOf = (moodleId: number) =>
      store === undefined
        ? Effect.succeed(undefined)
        : Effect.orElseSucceed(store.lookup(moodleId), () => undefined);
    if (assisted) {
      // Ids only: the entries are read again as their cards come in.
      const known: Array<{ moodleId: number; forumId: number }> = [];
      for (const candidate of toProcess) {
        const entry = yield* entryOf(candidate.user.id);
        if (entry !== undefined) {
          known.push({ moodleId: entry.moodleId, forumId: entry.forumId });
        }
      }
      yield* Effect.forEach(
        inChunks(known, userCardsPerRequest),
        (chunk) =>
          Effect.flatMap(
            discourse.userCards(chunk.map((link) => link.forumId)),
            (found) =>
              Effect.gen(function* () {
                const byId = new Map(found.map((card) => [card.id, card]));
                for (const link of chunk) {
                  const card = byId.get(link.forumId);
                  const entry = yield* entryOf(link.moodleId);
                  if (card === undefined || entry === undefined) continue;
                  if (sameCard(entry, card)) agreeing.add(card.id);
                  else differing.set(card.id, card);
                }
              }),
          ),
        { concurrency: run.concurrency, discard: true },
      );
    }
    const cardOf = (entry: StoredUser | undefined): UserCard | undefined =>
      entry === undefined
        ? undefined
        : agreeing.has(entry.forumId)
        ? storedCard(entry)
        : differing.get(entry.forumId);
    const writable = store !== undefined && !store.readOnly ? store : undefined;
    const counts = yield* Ref.make({ single: 0, unchanged: 0, forum: 0 });
    const remember = yield* makeRemembering(writable, run.stopped);
    const found = new Map<number, { forumId: number; email: string }>();

    /** One user's turn: from the store and bulk reads, or read in full. */
    const syncOne = (ctx: RunContext, candidate: UserCandidate) =>
      Effect.gen(function* () {
        if (!assisted && writable === undefined) {
          // Nothing to compare, nothing to remember: a run as without a store.
          yield* Ref.update(counts, (c) => ({ ...c, single: c.single + 1 }));
          return yield* syncUser(ctx, candidate);
        }
        const moodleId = candidate.user.id;
        const { desired } = candidate;
        // The bio is converted on each read of it: once here.
        const fields = {
          name: desired.name,
          location: desired.location,
          bio: desired.bio,
          email: desired.email,
        };
        const hash = desiredHash(fields, ctx.settings);
        const entry = yield* entryOf(moodleId);
        const card = cardOf(entry);
        let emailSource = ctx.emailSource;
        let emailsRead: EmailsResponse | undefined;
        let reads: UserReads = { _tag: "Read", reason: { _tag: "New" } };
        if (assisted) {
          const email = yield* emailOf(ctx.emailSource, card);
          if (email.source !== undefined) emailSource = email.source;
          emailsRead = email.read;
          reads = compareUser({
            entry,
            desired: fields,
            settings: ctx.settings,
            card,
            email: email.address,
            username: candidate.normalized,
          });
        }
        if (reads._tag === "Unchanged" && card !== undefined) {
          yield* Ref.update(
            counts,
            (c) => ({ ...c, unchanged: c.unchanged + 1 }),
          );
          return UserOutcome.UpToDate({
            who: { ...candidate, normalized: card.username },
            plan: { changes: [], skipped: [] },
            how:
              "unchanged since the last run (state store and bulk reads agree)",
            // Not read, so not checked: groups check it before using it.
            ownerUnchecked: ownerUncheckedOf(ctx, moodleId, card),
          });
        }
        if (
          reads._tag === "Read" && reads.reason._tag === "EmailChanged" &&
          card !== undefined && entry !== undefined
        ) {
          const emails = emailsRead ?? (yield* discourse.emails(card.username));
          const outcome = yield* carryOut(ctx, candidate, {
            username: card.username,
            plan: emailPlan(ctx, desired, emails),
            how:
              "the account the state store knows; only the email changed in Moodle",
            refusal: Effect.succeed(undefined),
          });
          yield* settle(ctx, outcome, entry, {
            moodleId,
            moodleUsername: candidate.username,
            forumId: card.id,
            email: emails.email,
            hash,
          }, card);
          return outcome;
        }
        const disagreement = reads._tag === "Read"
          ? forumDisagrees(candidate.normalized, reads.reason)
          : undefined;
        // A row without a match (a renamed account not found) cannot carry
        // the note: the run says it aloud instead.
        if (
          reads._tag === "Read" && reads.reason._tag !== "ForumChanged" &&
          disagreement !== undefined
        ) {
          yield* reporter.warn(disagreement);
        }
        yield* Ref.update(counts, (c) => ({
          ...c,
          single: c.single + 1,
          forum: c.forum + (disagreement === undefined ? 0 : 1),
        }));
        const read = yield* syncUser({
          ...ctx,
          emailSource,
          // The run's own listener (the leavers step's) hears it too.
          accountFound: (id, account) =>
            Effect.zipRight(
              ctx.accountFound?.(id, account) ?? Effect.void,
              Effect.sync(() => {
                found.set(id, {
                  forumId: account.user.id,
                  email: account.email ?? "",
                });
              }),
            ),
        }, candidate);
        // The row says the forum changed: its values are the ones used.
        const outcome = disagreement !== undefined && "how" in read
          ? { ...read, how: `${read.how}; ${disagreement}` }
          : read;
        const account = found.get(moodleId);
        found.delete(moodleId);
        yield* settle(
          ctx,
          outcome,
          entry,
          account &&
            { moodleId, moodleUsername: candidate.username, ...account, hash },
          card?.id === account?.forumId ? card : undefined,
        );
        return outcome;
      });

    /**
     * An --apply run remembers a user left in step, with the card bulk reads
     * show for it now; a user not in step is read in full next time.
     */
    const settle = (
      ctx: RunContext,
      outcome: UserOutcome,
      entry: StoredUser | undefined,
      user: ToRemember | undefined,
      /** This run's card of the account, read before any write. */
      card: UserCard | undefined,
    ) =>
      Effect.gen(function* () {
        if (writable === undefined) return;
        if (!isSettled(outcome, ctx.emailsShared) || user === undefined) {
          if (entry !== undefined) {
            yield* remember.forget(user?.moodleId ?? entry.moodleId);
          }
          return;
        }
        yield* remember.add(user, card && cardAfter(outcome, card));
      });

    const summary = Effect.gen(function* () {
      yield* remember.flush;
      const c = yield* Ref.get(counts);
      return {
        mode: assisted ? "state-assisted" : "full",
        why: plan._tag === "Full" ? plan.why : undefined,
        singleProfileReads: c.single,
        unchanged: c.unchanged,
        forumChanged: c.forum,
        storeUpdated: yield* remember.written,
      } satisfies ReadsSummary;
    });
    return { syncOne, summary };
  });

/**
 * The owner check a full run's match would call for, by how the store's
 * account was found: by external id under `match: external_id`, else (at
 * best) by username.
 */
const ownerUncheckedOf = (
  ctx: RunContext,
  moodleId: number,
  card: UserCard,
): OwnerUnchecked | undefined => {
  const by: MatchedBy = ctx.settings.match === "external_id"
    ? { _tag: "ExternalId", externalId: String(moodleId) }
    : { _tag: "Username", username: card.username };
  return needsOwnershipCheck(by, ctx.settings)
    ? { accountId: card.id, by }
    : undefined;
};

/** Only the email, planned from `emails.json` as a full run plans it. */
const emailPlan = (
  ctx: RunContext,
  desired: DesiredProfile,
  emails: EmailsResponse,
) =>
  withoutSharedEmail(
    diffProfile(
      desired,
      {
        name: "",
        location: "",
        bio: "",
        email: emails.email,
        pendingEmails: emails.unconfirmed_emails,
      },
      { name: "off", location: "off", bio: "off", email: "overwrite" },
      { name: true, location: true, bio: true, email: true },
      { force: false },
    ),
    ctx.emailsShared,
  );

/**
 * The primary email bulk reads give for a card, and (small batches, which
 * read emails per user) the source the user's steps then reuse.
 */
const emailOf = (source: EmailSource, card: UserCard | undefined) =>
  Effect.gen(function* () {
    const none = { source: undefined, read: undefined };
    if (source._tag === "none") return { ...none, address: "" };
    if (card === undefined) return { ...none, address: undefined };
    const key = card.username.toLowerCase();
    if (source._tag === "bulk") {
      return { ...none, address: yield* source.emails.lookup(key) };
    }
    const discourse = yield* Discourse;
    const emails = yield* discourse.emails(card.username);
    return {
      address: emails.email,
      read: emails,
      source: {
        _tag: "bulk",
        emails: fixedEmails(new Map([[key, emails.email]])),
        pending: new Map([[key, emails.unconfirmed_emails]]),
      } satisfies EmailSource,
    };
  });
