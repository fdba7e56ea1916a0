/**
 * `revert` for membership rows: a member the sync added is removed, one it
 * removed is added back, each only while the group is still as the sync
 * left it (a member since removed, or re-added, is newer than the log and
 * is left alone). One read of each group, then its writes 1000 a request.
 */
import { Effect, Option } from "effect";
import type { AuditLogError } from "../audit/AuditLog.ts";
import type { Journal } from "../audit/Journal.ts";
import { Discourse } from "../discourse/Discourse.ts";
import type { MembershipChange } from "../groups/model.ts";
import {
  type Direction,
  membershipRow,
  type MembershipWords,
} from "../groups/words.ts";
import { writeGroup } from "../groups/write.ts";
import type { Ledger } from "../sync/ledger.ts";
import type { MembershipTarget } from "./readLog.ts";

const undoOf = (direction: Direction): Direction =>
  direction === "add" ? "remove" : "add";

const targetKey = (direction: Direction, username: string) =>
  `${direction}:${username.toLowerCase()}`;

/** Reverts one group's rows; returns how many rows it logged. */
const revertGroup = (
  group: string,
  targets: ReadonlyArray<MembershipTarget>,
  options: { readonly apply: boolean; readonly ledger: Ledger },
) =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const { ledger } = options;
    // The undo of each row, by the direction it goes now.
    const undo = new Map(
      targets.map((t) => [
        targetKey(undoOf(t.direction), t.entry.normalizedUsername),
        t,
      ]),
    );
    const rowOf = (
      direction: Direction,
      change: Pick<MembershipChange, "username">,
      words: MembershipWords,
    ) => {
      const target = undo.get(targetKey(direction, change.username));
      return membershipRow({
        direction,
        group,
        username: change.username,
        identity: target?.entry,
        reason: `putting back line ${
          target?.line ?? "?"
        } of the log (the sync ${
          direction === "add" ? "removed" : "added"
        } this member)`,
      }, words);
    };
    let rowNumber = 0;
    const recordEach = (words: MembershipWords) =>
      Effect.forEach(undo.values(), (target) =>
        ledger.record(
          `revert-group:${group}:${++rowNumber}`,
          rowOf(
            undoOf(target.direction),
            { username: target.entry.normalizedUsername },
            words,
          ),
        ), { discard: true });

    const read = yield* Effect.either(
      Effect.gen(function* () {
        const found = yield* discourse.group(group);
        if (Option.isNone(found)) return undefined;
        return {
          id: found.value.id,
          ...(yield* discourse.groupMembers(group)),
        };
      }),
    );
    if (read._tag === "Left" || read.right === undefined) {
      if (read._tag === "Left") yield* ledger.noteFailure(read.left);
      yield* recordEach({
        _tag: "Failed",
        error: read._tag === "Left"
          ? `group "${group}" could not be read: ${read.left.message}`
          : `group "${group}" is no longer in the forum (deleted or renamed since the sync): nothing put back`,
      });
      return undo.size;
    }
    const { id, members, owners } = read.right;
    const has = (list: ReadonlyArray<string>, name: string) =>
      list.some((m) => m.toLowerCase() === name.toLowerCase());
    const additions: Array<MembershipChange> = [];
    const removals: Array<MembershipChange> = [];
    for (const target of undo.values()) {
      const username = target.entry.normalizedUsername;
      const direction = undoOf(target.direction);
      const member = has(members, username);
      const leftAlone = direction === "remove"
        ? !member
          ? "no longer a member (changed since the sync): left alone"
          : has(owners, username)
          ? "an owner of the group now: left alone"
          : undefined
        : member
        ? "a member again since the sync: left alone"
        : undefined;
      if (leftAlone !== undefined) {
        yield* ledger.record(
          `revert-group:${group}:${++rowNumber}`,
          rowOf(direction, { username }, { _tag: "NotSent", why: leftAlone }),
        );
        continue;
      }
      const change = { username, moodleId: target.entry.moodleId, reason: "" };
      (direction === "add" ? additions : removals).push(change);
    }
    if (!options.apply) {
      for (
        const [direction, changes] of [["add", additions], [
          "remove",
          removals,
        ]] as const
      ) {
        for (const change of changes) {
          yield* ledger.record(
            `revert-group:${group}:${++rowNumber}`,
            rowOf(direction, change, { _tag: "Planned", creating: false }),
          );
        }
      }
      return undo.size;
    }
    yield* writeGroup({
      plan: { group, additions, removals },
      groupId: Option.some(id),
      identityOf: () => undefined,
      ledger,
      rowOf,
    });
    return undo.size;
  });

/** Reverts every membership row, group by group; returns the rows logged. */
export const revertMemberships = (
  targets: ReadonlyArray<MembershipTarget>,
  options: { readonly apply: boolean; readonly ledger: Ledger },
): Effect.Effect<number, AuditLogError, Discourse | Journal> =>
  Effect.gen(function* () {
    const byGroup = new Map<string, Array<MembershipTarget>>();
    for (const target of targets) {
      const key = target.group.toLowerCase();
      byGroup.set(key, [...(byGroup.get(key) ?? []), target]);
    }
    let logged = 0;
    for (const rows of byGroup.values()) {
      if ((yield* options.ledger.stopped) !== undefined) break;
      logged += yield* revertGroup(rows[0].group, rows, options);
    }
    return logged;
  });
