/**
 * A group's membership writes: the group created when it must be, then one
 * add or remove request per 1000 members, each sent only once every row's
 * intent is in the journal, and one row per membership after it. Shared by
 * the sync and by `revert`.
 */
import { Effect, Option } from "effect";
import { AuditLogError } from "../audit/AuditLog.ts";
import { Journal, StoppedBeforeWrite } from "../audit/Journal.ts";
import { Discourse } from "../discourse/Discourse.ts";
import type { Ledger } from "../sync/ledger.ts";
import type { Done } from "../sync/summary.ts";
import type { GroupPlan, MembershipChange } from "./model.ts";
import { membershipRequests } from "./requests.ts";
import type { Identity } from "./verdicts.ts";
import {
  type Direction,
  membershipRow,
  type MembershipWords,
} from "./words.ts";

export interface GroupWrite {
  /** Only `group`, `additions` and `removals` are read. */
  readonly plan: Pick<GroupPlan, "group" | "additions" | "removals">;
  /** None: the group is created first. */
  readonly groupId: Option.Option<number>;
  readonly identityOf: (moodleId: number | undefined) => Identity | undefined;
  readonly ledger: Ledger;
  /** The words of a row, when the caller (revert) has its own. */
  readonly rowOf?: (
    direction: Direction,
    change: MembershipChange,
    words: MembershipWords,
  ) => Done;
}

/** Names a membership's writes in the journal, and closes them with its row. */
const membershipKey = (group: string, direction: Direction, username: string) =>
  `group:${group.toLowerCase()}:${direction}:${username.toLowerCase()}`;

/** Makes a group's changes; returns how many memberships were changed. */
export const writeGroup = (write: GroupWrite) =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const journal = yield* Journal;
    const { plan, ledger } = write;
    const rowOf = write.rowOf ?? ((direction, change, words) =>
      membershipRow({
        direction,
        group: plan.group,
        username: change.username,
        identity: write.identityOf(change.moodleId),
        reason: change.reason,
      }, words));
    const byName = {
      add: new Map(plan.additions.map((c) => [c.username, c])),
      remove: new Map(plan.removals.map((c) => [c.username, c])),
    };
    const recordAll = (
      direction: Direction,
      usernames: ReadonlyArray<string>,
      words: (username: string) => MembershipWords,
    ) =>
      Effect.forEach(usernames, (username) => {
        const change = byName[direction].get(username);
        return change === undefined ? Effect.void : Effect.asVoid(
          ledger.record(
            membershipKey(plan.group, direction, username),
            rowOf(direction, change, words(username)),
          ),
        );
      }, { discard: true });

    let groupId = Option.getOrUndefined(write.groupId);
    if (groupId === undefined) {
      const created = yield* Effect.either(discourse.createGroup(plan.group));
      if (created._tag === "Left") {
        yield* ledger.noteFailure(created.left);
        const error = `the group could not be created: ${created.left.message}`;
        for (const direction of ["add", "remove"] as const) {
          yield* recordAll(direction, [...byName[direction].keys()], () => ({
            _tag: "Failed",
            error,
          }));
        }
        return 0;
      }
      groupId = created.right.id;
    }
    const group = { id: groupId, name: plan.group };

    let changed = 0;
    for (const request of membershipRequests(plan)) {
      const { direction, usernames } = request;
      const stopped = yield* ledger.stopped;
      if (stopped !== undefined) {
        yield* recordAll(direction, usernames, () => ({
          _tag: "NotSent",
          why: "the run stopped before this request was sent",
        }));
        continue;
      }
      const intents = usernames.flatMap((username) => {
        const change = byName[direction].get(username);
        return change === undefined ? [] : [{
          key: membershipKey(plan.group, direction, username),
          intent: rowOf(direction, change, { _tag: "Planned", creating: false })
            .entry,
        }];
      });
      const sent = yield* Effect.either(
        journal.writeAll(
          intents,
          direction === "add"
            ? Effect.map(
              discourse.addGroupMembers(group, usernames),
              (answer) =>
                answer.alreadyMembers ? usernames : [] as ReadonlyArray<string>,
            )
            : Effect.map(
              discourse.removeGroupMembers(group, usernames),
              (answer) => answer.skipped,
            ),
        ),
      );
      if (sent._tag === "Left") {
        const error = sent.left;
        if (error instanceof AuditLogError) return yield* error;
        if (error instanceof StoppedBeforeWrite) {
          yield* recordAll(direction, usernames, () => ({
            _tag: "NotSent",
            why: error.message,
          }));
          continue;
        }
        yield* ledger.noteFailure(error);
        yield* recordAll(direction, usernames, () => ({
          _tag: "Failed",
          error: error.message,
        }));
        continue;
      }
      const untouched = new Set(sent.right.map((name) => name.toLowerCase()));
      yield* recordAll(direction, usernames, (username) =>
        untouched.has(username.toLowerCase())
          ? { _tag: "AlreadyThere" }
          : { _tag: "Done" });
      changed += usernames.filter((u) =>
        !untouched.has(u.toLowerCase())
      )
        .length;
    }
    return changed;
  });
