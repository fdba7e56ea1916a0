/**
 * What an --apply run remembers of a user left in step: the account, the
 * fingerprint of the desired profile, and the card bulk reads show for it.
 * Cards of written profiles are read after the writes, 50 users a request.
 */
import { Effect, Ref } from "effect";
import { Discourse, userCardsPerRequest } from "../discourse/Discourse.ts";
import type { UserCard } from "../discourse/schema.ts";
import type { StateStoreService } from "../state/Store.ts";
import { makeLine } from "../domain/line.ts";
import { snapshotOf } from "./assisted.ts";
import { Reporter } from "./Reporter.ts";
import type { UserOutcome } from "./UserOutcome.ts";

/** A settled user waiting for its card, read 50 at a time. */
export interface ToRemember {
  readonly moodleId: number;
  readonly moodleUsername: string;
  readonly forumId: number;
  readonly email: string;
  readonly hash: string;
}

export const inChunks = <A>(
  items: ReadonlyArray<A>,
  size: number,
): Array<Array<A>> =>
  Array.from(
    { length: Math.ceil(items.length / size) },
    (_, i) => items.slice(i * size, (i + 1) * size),
  );

/**
 * The card bulk reads would show after this outcome's writes, when it can be
 * known without reading it: the bio's excerpt is Discourse's own rendering,
 * so a written bio needs the card read again.
 */
export const cardAfter = (
  outcome: UserOutcome,
  before: UserCard,
): UserCard | undefined => {
  if (outcome._tag !== "Applied") return before;
  const written = new Map(outcome.plan.changes.map((c) => [c.field, c.after]));
  if (written.has("bio")) return undefined;
  return {
    ...before,
    name: written.get("name") ?? before.name,
    location: written.get("location") ?? before.location,
  };
};

/**
 * Settled users go to the store with their card as bulk reads show it: a
 * written profile's card is read after the write, 50 users a request. A store
 * that fails a write is said once and left alone for the rest of the run. Once
 * the run stops, the cards not yet read are not: those users are read in full
 * next time.
 */
export const makeRemembering = (
  store: StateStoreService | undefined,
  /** True once the run stops: no request is sent for the store after that. */
  stopped: Effect.Effect<boolean>,
) =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const reporter = yield* Reporter;
    const waiting = yield* Ref.make<ReadonlyArray<ToRemember>>([]);
    const written = yield* Ref.make(0);
    const broken = yield* Ref.make(false);
    const flushing = yield* makeLine;

    const guard = <E extends { readonly message: string }>(
      write: Effect.Effect<unknown, E>,
    ) =>
      Effect.gen(function* () {
        if (store === undefined || (yield* Ref.get(broken))) return false;
        const result = yield* Effect.either(write);
        if (result._tag === "Right") return true;
        if (!(yield* Ref.getAndSet(broken, true))) {
          yield* reporter.warn(
            `${result.left.message} The rest of this run is not remembered; the next run reads those users in full.`,
          );
        }
        return false;
      });

    const upsert = (user: ToRemember, card: UserCard) =>
      Effect.gen(function* () {
        if (store === undefined) return;
        const ok = yield* guard(store.upsert({
          moodleId: user.moodleId,
          moodleUsername: user.moodleUsername,
          forumId: user.forumId,
          forumUsername: card.username,
          desiredHash: user.hash,
          snapshot: snapshotOf(card, user.email),
        }));
        if (ok) yield* Ref.update(written, (n) => n + 1);
      });

    const readCards = (batch: ReadonlyArray<ToRemember>) =>
      Effect.gen(function* () {
        const cards = yield* discourse.userCards(batch.map((u) => u.forumId));
        const byId = new Map(cards.map((card) => [card.id, card]));
        for (const user of batch) {
          const card = byId.get(user.forumId);
          if (card !== undefined) yield* upsert(user, card);
        }
      }).pipe(
        // Not remembered is not wrong: those users are read again next time.
        Effect.catchAll((error) =>
          reporter.warn(
            `${error.message} ${batch.length} users are not remembered in the state store; the next run reads them in full.`,
          )
        ),
      );

    const take = (all: boolean) =>
      Ref.modify(
        waiting,
        (now) =>
          all || now.length >= userCardsPerRequest
            ? [now, [] as ReadonlyArray<ToRemember>]
            : [[] as ReadonlyArray<ToRemember>, now],
      );

    const drain = (all: boolean) =>
      flushing.inTurn(
        Effect.gen(function* () {
          if (yield* stopped) return;
          const batch = yield* take(all);
          for (const chunk of inChunks(batch, userCardsPerRequest)) {
            yield* readCards(chunk);
          }
        }),
      );

    return {
      add: (user: ToRemember, card: UserCard | undefined) =>
        card !== undefined ? upsert(user, card) : Effect.gen(function* () {
          yield* Ref.update(waiting, (now) => [...now, user]);
          yield* drain(false);
        }),
      forget: (moodleId: number) =>
        store === undefined
          ? Effect.void
          : Effect.asVoid(guard(store.invalidate(moodleId))),
      flush: drain(true),
      written: Ref.get(written),
    };
  });
