/**
 * The groups stage of a sync, after the profile sync: read the mapped
 * sources and groups, plan each group from what the profile sync made of
 * every Moodle user, then (once the run's removals are judged) log and make
 * the changes, 1000 memberships a request.
 */
import { Effect, Option } from "effect";
import type { Settings } from "../config/Settings.ts";
import { Discourse } from "../discourse/Discourse.ts";
import type { RemovalVerdict } from "../domain/removals.ts";
import type { Ledger } from "../sync/ledger.ts";
import { foreignAccountMessage, ownershipOf } from "../sync/match.ts";
import type { RemovingStage, StageResult } from "../sync/removals.ts";
import { Reporter } from "../sync/Reporter.ts";
import { compileExclusions } from "../sync/select.ts";
import type { AccountVerdict, GroupPlan, GroupRead } from "./model.ts";
import { planGroups } from "./plan.ts";
import { membershipRequests } from "./requests.ts";
import type { GroupSeen } from "./idsSeen.ts";
import type { GroupsSettings } from "./settings.ts";
import { readGroupIds, readGroups, readSources } from "./sources.ts";
import type { MappedUser } from "./verdicts.ts";
import { writeGroup } from "./write.ts";
import {
  groupHeading,
  guardRow,
  leftAloneRow,
  membershipRow,
  stoppedBetweenGroups,
} from "./words.ts";

export interface GroupsInput {
  readonly groups: GroupsSettings;
  readonly settings: Settings;
  readonly apply: boolean;
  readonly allowEmptyGroups: boolean;
  readonly excludedByFile: ReadonlyArray<string>;
  /** What the profile sync made of each Moodle user it considered. */
  readonly mapped: ReadonlyMap<number, MappedUser>;
  /** The managed groups' ids this run's profile reads showed. */
  readonly groupIds: ReadonlyMap<string, GroupSeen>;
  /** A batch or `--user`: only these users' memberships change. */
  readonly onlyMoodleIds: ReadonlySet<number> | undefined;
  readonly ledger: Ledger;
  /** True once SIGINT/SIGTERM asked to stop: no further group is started. */
  readonly stopRequested?: Effect.Effect<boolean> | undefined;
}

/**
 * Accounts guessed on a DiscourseConnect site that would join a group are
 * checked first (one `GET /admin/users/{id}.json` each), as the profile sync
 * checks an account before writing it.
 */
const checkOwners = (
  plans: ReadonlyArray<GroupPlan>,
  accounts: Map<number, AccountVerdict>,
) =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const joining = new Set(
      plans.flatMap((plan) =>
        plan.additions.flatMap((change) =>
          change.moodleId === undefined ? [] : [change.moodleId]
        )
      ),
    );
    let changed = false;
    for (const moodleId of joining) {
      const verdict = accounts.get(moodleId);
      if (verdict?._tag !== "Account" || !verdict.ownerUnchecked) continue;
      const { accountId, by } = verdict.ownerUnchecked;
      const owner = yield* discourse.externalIdOf(accountId).pipe(
        Effect.map((carried) => ownershipOf(carried, moodleId)),
        Effect.either,
      );
      const foreign = owner._tag === "Right" && owner.right._tag === "Foreign"
        ? owner.right
        : undefined;
      if (owner._tag === "Right" && foreign === undefined) {
        accounts.set(moodleId, { ...verdict, ownerUnchecked: undefined });
        continue;
      }
      changed = true;
      const account = { user: { username: verdict.username } };
      accounts.set(moodleId, {
        _tag: "Refused",
        kind: foreign === undefined ? "Failed" : "ForeignAccount",
        username: verdict.username,
        message: foreign === undefined
          ? `the owner of forum account "${verdict.username}" could not be checked: ${
            owner._tag === "Left" ? owner.left.message : ""
          }`
          : foreignAccountMessage(by, account, foreign.externalId, moodleId),
      });
    }
    return changed;
  });

/** A group the forum has, whose id this run's profile reads did not show. */
const idUnknown = (reads: ReadonlyMap<string, GroupRead>, group: string) => {
  const read = reads.get(group.toLowerCase());
  return read?._tag === "Found" && read.id === undefined;
};

/** Reads and plans every managed group; nothing is logged or written yet. */
export const planGroupStage = (input: GroupsInput) =>
  Effect.gen(function* () {
    const { groups, settings } = input;
    const sources = yield* readSources(groups.map);
    const names = [
      ...new Map(groups.map.map((e) => [e.group.toLowerCase(), e.group]))
        .values(),
    ];
    let reads = yield* readGroups(names, input.groupIds);
    const accounts = new Map<number, AccountVerdict>(
      [...input.mapped].map(([id, user]) => [id, user.verdict]),
    );
    const excluded = compileExclusions({
      patterns: [...settings.exclude.usernames, ...input.excludedByFile],
      suspended: settings.exclude.suspended,
    });
    const apiUser = settings.discourse.apiUser.toLowerCase();
    const plan = () =>
      planGroups({
        map: groups.map,
        sources,
        accounts,
        groups: reads,
        untouchable: (username) =>
          username.toLowerCase() === apiUser
            ? "it is the API user the sync acts as (discourse.apiUser)"
            : excluded(username),
        remove: groups.remove,
        create: groups.create,
        allowEmptyGroups: input.allowEmptyGroups,
        onlyMoodleIds: input.onlyMoodleIds,
      });
    let plans = plan();
    if (yield* checkOwners(plans, accounts)) plans = plan();
    const idsWanted = plans.filter((p) =>
      idUnknown(reads, p.group) && membershipRequests(p).length > 0
    ).map((p) => p.group);
    if (idsWanted.length > 0) {
      // The same plan again: only the groups whose read changed can differ
      // (an automatic group refused, an unreadable one held).
      reads = yield* readGroupIds(reads, idsWanted);
      plans = plan();
    }
    return {
      planned: {
        groupMemberships: plans.reduce((n, p) => n + p.removals.length, 0),
      },
      carryOut: (verdict: RemovalVerdict) =>
        carryOut(input, plans, reads, verdict),
    } satisfies RemovingStage<unknown, unknown>;
  });

/** Logs and (with `--apply`) makes every group's changes. */
const carryOut = (
  input: GroupsInput,
  plans: ReadonlyArray<GroupPlan>,
  reads: ReadonlyMap<string, GroupRead>,
  verdict: RemovalVerdict,
) =>
  Effect.gen(function* () {
    const reporter = yield* Reporter;
    const { ledger, mapped } = input;
    const identityOf = (moodleId: number | undefined) =>
      moodleId === undefined ? undefined : mapped.get(moodleId)?.identity;
    let pending = 0;
    let rowNumber = 0;
    const record = (done: Parameters<Ledger["record"]>[1]) =>
      ledger.record(`group-row:${++rowNumber}`, done);
    for (const [index, plan] of plans.entries()) {
      if (input.stopRequested !== undefined && (yield* input.stopRequested)) {
        // A signal: the group in flight is done and logged; start no other.
        const left = plans.slice(index);
        pending += left.reduce(
          (n, p) => n + p.additions.length + p.removals.length,
          0,
        );
        yield* ledger.stopWith({ _tag: "Interrupted" });
        yield* reporter.warn(stoppedBetweenGroups(left.map((p) => p.group)));
        break;
      }
      yield* reporter.heading(groupHeading(plan, input.apply));
      for (const guard of plan.guards) yield* record(guardRow(guard.message));
      for (const alone of plan.leftAlone) {
        yield* record(
          leftAloneRow(
            plan.group,
            alone.direction,
            alone.username,
            identityOf(alone.moodleId),
            alone.reason,
          ),
        );
      }
      const change = (direction: "add" | "remove") =>
      (
        item: GroupPlan["additions"][number],
      ) => ({
        direction,
        group: plan.group,
        username: item.username,
        identity: identityOf(item.moodleId),
        reason: item.reason,
      });
      for (const held of plan.heldRemovals) {
        yield* record(membershipRow(change("remove")(held), {
          _tag: "NotSent",
          why:
            `held back with every removal from this group: see its ERROR row`,
        }));
      }
      const removalsHeld = verdict._tag === "Held";
      if (removalsHeld) {
        for (const removal of plan.removals) {
          yield* record(membershipRow(change("remove")(removal), {
            _tag: "Held",
            why: verdict.message,
          }));
        }
      }
      pending += plan.additions.length + plan.removals.length;
      if (!input.apply) {
        const planned = { _tag: "Planned", creating: plan.create } as const;
        for (const addition of plan.additions) {
          yield* record(membershipRow(change("add")(addition), planned));
        }
        if (!removalsHeld) {
          for (const removal of plan.removals) {
            yield* record(membershipRow(change("remove")(removal), planned));
          }
        }
        continue;
      }
      const toWrite = removalsHeld ? { ...plan, removals: [] } : plan;
      if (membershipRequests(toWrite).length === 0) continue;
      const read = reads.get(plan.group.toLowerCase());
      if (read?._tag === "Found" && read.id === undefined) {
        return yield* Effect.dieMessage(
          `group "${plan.group}" has changes and no id: its id is read while planning`,
        );
      }
      pending -= yield* writeGroup({
        plan: toWrite,
        groupId: Option.fromNullable(
          read?._tag === "Found" ? read.id : undefined,
        ),
        identityOf,
        ledger,
      });
    }
    return { pending } satisfies StageResult;
  });
