/**
 * What group membership changes a run makes, decided from what was read.
 * Pure: the runner reads the sources, the account mapping and the groups,
 * then asks this module. The guards live here so that no read failure and
 * no empty answer can turn into "remove everyone".
 */
import type {
  GroupGuard,
  GroupPlan,
  GroupRead,
  GroupSource,
  GroupsPlanInput,
  MemberLeftAlone,
  MembershipChange,
} from "./model.ts";
import { describeSource, sourceKey } from "./model.ts";
import type { GroupMapEntry } from "./settings.ts";

/** Map entries by group, in the map's order: several sources feed one group. */
const sourcesByGroup = (map: ReadonlyArray<GroupMapEntry>) => {
  const groups = new Map<string, { name: string; sources: GroupSource[] }>();
  for (const entry of map) {
    const key = entry.group.toLowerCase();
    const known = groups.get(key) ?? { name: entry.group, sources: [] };
    if (!known.sources.some((s) => sourceKey(s) === sourceKey(entry))) {
      known.sources.push(entry);
    }
    groups.set(key, known);
  }
  return [...groups.values()];
};

const emptyPlan = (group: string, guard: GroupGuard): GroupPlan => ({
  group,
  groupId: undefined,
  create: false,
  additions: [],
  removals: [],
  heldRemovals: [],
  leftAlone: [],
  guards: [guard],
});

/** The group itself cannot take changes: missing without create, unreadable, automatic. */
const groupStopper = (
  name: string,
  read: GroupRead,
  create: boolean,
): GroupGuard | undefined => {
  if (read._tag === "Failed") {
    return {
      _tag: "GroupUnreadable",
      message:
        `group "${name}" left unchanged: it could not be read (${read.reason})`,
    };
  }
  if (read._tag === "Missing" && !create) {
    return {
      _tag: "GroupMissing",
      message:
        `group "${name}" does not exist in the forum: create it in Admin > Groups, set "groups.create": true to let the sync create it, or correct the name in groups.map`,
    };
  }
  if (read._tag === "Found" && read.automatic) {
    return {
      _tag: "AutomaticGroup",
      message:
        `group "${name}" is automatic in this forum (Discourse fills it itself): remove it from groups.map`,
    };
  }
  return undefined;
};

/** What one group's sources ask for, gathered across the union. */
interface SourcesView {
  /** Lowercased usernames the sources want in the group. */
  readonly wanted: Set<string>;
  readonly additions: MembershipChange[];
  readonly leftAlone: MemberLeftAlone[];
  readonly guards: GroupGuard[];
  /** Accounts a refused source member points at: never removed for it. */
  readonly refusedAccounts: Map<string, string>;
  readonly emptySources: GroupSource[];
}

interface GroupContext {
  readonly name: string;
  readonly input: GroupsPlanInput;
  /** Lowercased usernames of the group's current members. */
  readonly current: ReadonlySet<string>;
  readonly concerns: (moodleId: number | undefined) => boolean;
}

const sourceFailed = (name: string, source: GroupSource, reason: string) => ({
  _tag: "SourceFailed" as const,
  message: `group "${name}": no member removed because ${
    describeSource(source)
  } could not be read (${reason}); fix the Moodle call (token capabilities, the name in groups.map) and run again`,
});

const emptySource = (name: string, source: GroupSource) => ({
  _tag: "EmptySource" as const,
  message: `group "${name}": no member removed because ${
    describeSource(source)
  } came back empty while the group has members (an emptied cohort and a token that lost a capability look the same); check it in Moodle, and if it is really empty run again with --allow-empty-groups`,
});

function readSources(
  sources: ReadonlyArray<GroupSource>,
  context: GroupContext,
): SourcesView {
  const { name, input, current, concerns } = context;
  const view: SourcesView = {
    wanted: new Set(),
    additions: [],
    leftAlone: [],
    guards: [],
    refusedAccounts: new Map(),
    emptySources: [],
  };
  const seen = new Set<number>();
  for (const source of sources) {
    const read = input.sources.get(sourceKey(source)) ??
      { _tag: "Failed", reason: "it was not read" };
    if (read._tag === "Failed") {
      // Additions from the union's healthy sources still proceed: they are
      // right whatever the failed source holds; only removals need it whole.
      view.guards.push(sourceFailed(name, source, read.reason));
      continue;
    }
    if (read.moodleIds.length === 0) view.emptySources.push(source);
    for (const moodleId of read.moodleIds) {
      // A user in several sources of the union is judged (and logged) once.
      if (seen.has(moodleId)) continue;
      seen.add(moodleId);
      const verdict = input.accounts.get(moodleId);
      if (verdict === undefined || verdict._tag === "Refused") {
        const pointsAt = verdict?.username?.toLowerCase();
        if (verdict !== undefined && pointsAt !== undefined) {
          view.refusedAccounts.set(pointsAt, verdict.message);
        }
        // A refused user who is already a member is kept, not "not added".
        if (concerns(moodleId) && !current.has(pointsAt ?? "")) {
          view.leftAlone.push({
            username: verdict?.username,
            moodleId,
            direction: "add",
            reason: `not added: ${
              verdict?.message ??
                "this Moodle user was not among the users this run read"
            }`,
          });
        }
        continue;
      }
      const key = verdict.username.toLowerCase();
      if (view.wanted.has(key)) continue;
      view.wanted.add(key);
      if (current.has(key) || !concerns(moodleId)) continue;
      const untouchable = input.untouchable(verdict.username);
      if (untouchable !== undefined) {
        view.leftAlone.push({
          username: verdict.username,
          moodleId,
          direction: "add",
          reason: `not added: ${untouchable}`,
        });
        continue;
      }
      view.additions.push({
        username: verdict.username,
        moodleId,
        reason: `in ${describeSource(source)}`,
      });
    }
  }
  return view;
}

/** Members no source wants, minus those the sync must keep. */
function unwantedMembers(
  found: Extract<GroupRead, { _tag: "Found" }> | undefined,
  sources: ReadonlyArray<GroupSource>,
  view: SourcesView,
  context: GroupContext,
  moodleIdByUsername: ReadonlyMap<string, number>,
): MembershipChange[] {
  const owners = new Set((found?.owners ?? []).map((o) => o.toLowerCase()));
  const removals: MembershipChange[] = [];
  for (const member of found?.members ?? []) {
    const key = member.toLowerCase();
    if (view.wanted.has(key)) continue;
    const moodleId = moodleIdByUsername.get(key);
    if (!context.concerns(moodleId)) continue;
    const refused = view.refusedAccounts.get(key);
    const untouchable = context.input.untouchable(member);
    const keptBecause = owners.has(key)
      ? "group owners are never removed by the sync"
      : refused ?? untouchable;
    if (keptBecause !== undefined) {
      view.leftAlone.push({
        username: member,
        moodleId,
        direction: "remove",
        reason: `not removed: ${keptBecause}`,
      });
      continue;
    }
    removals.push({
      username: member,
      moodleId,
      reason: `in none of ${
        sources.map(describeSource).join(", ")
      } (the sources of group "${context.name}")`,
    });
  }
  return removals;
}

/** One group's plan; `read` is the forum's view, `sources` what feeds it. */
function planGroup(
  name: string,
  sources: ReadonlyArray<GroupSource>,
  read: GroupRead,
  input: GroupsPlanInput,
  moodleIdByUsername: ReadonlyMap<string, number>,
): GroupPlan {
  const stopper = groupStopper(name, read, input.create);
  if (stopper !== undefined) return emptyPlan(name, stopper);
  const found = read._tag === "Found" ? read : undefined;
  const only = input.onlyMoodleIds;
  const context: GroupContext = {
    name,
    input,
    current: new Set((found?.members ?? []).map((m) => m.toLowerCase())),
    concerns: (moodleId) =>
      only === undefined || (moodleId !== undefined && only.has(moodleId)),
  };
  const view = readSources(sources, context);
  const removals = input.remove
    ? unwantedMembers(found, sources, view, context, moodleIdByUsername)
    : [];
  // An empty source only matters when it would remove someone.
  if (removals.length > 0 && !input.allowEmptyGroups) {
    view.guards.push(...view.emptySources.map((s) => emptySource(name, s)));
  }
  const hold = view.guards.length > 0;
  return {
    group: name,
    groupId: found?.id,
    create: read._tag === "Missing",
    additions: view.additions,
    removals: hold ? [] : removals,
    heldRemovals: hold ? removals : [],
    leftAlone: view.leftAlone,
    guards: view.guards,
  };
}

/** Every managed group's plan, in the order the map first names them. */
export function planGroups(input: GroupsPlanInput): ReadonlyArray<GroupPlan> {
  // A member outside every source may still map to a Moodle user: its log
  // row then carries that user's columns.
  const moodleIdByUsername = new Map<string, number>();
  for (const [moodleId, verdict] of input.accounts) {
    if (verdict._tag === "Account") {
      moodleIdByUsername.set(verdict.username.toLowerCase(), moodleId);
    }
  }
  return sourcesByGroup(input.map).map(({ name, sources }) =>
    planGroup(
      name,
      sources,
      input.groups.get(name.toLowerCase()) ??
        { _tag: "Failed", reason: "it was not read" },
      input,
      moodleIdByUsername,
    )
  );
}
