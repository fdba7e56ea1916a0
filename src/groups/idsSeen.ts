/**
 * The managed groups' ids as this run's profile reads showed them. The
 * membership writes take a group's numeric id, which its members page does
 * not carry; every profile answer lists its account's groups with their
 * ids, so a full run learns them at no request of its own. Kept for this
 * run only: a group renamed since would point a stored id at another group.
 */
import { Effect } from "effect";
import type { ProfileGroup } from "../discourse/schema.ts";
import type { GroupsSettings } from "./settings.ts";

/** What a profile showed of a managed group. */
export type GroupSeen = Omit<ProfileGroup, "name">;

export interface GroupIdsSeen {
  /** The profile stage's listener: notes an account's managed groups. */
  readonly note: (
    groups: ReadonlyArray<ProfileGroup> | undefined,
  ) => Effect.Effect<void>;
  /** By lowercased group name. */
  readonly byName: ReadonlyMap<string, GroupSeen>;
}

/** Without a `groups` key, nothing is noted. */
export const groupIdsSeen = (
  groups: GroupsSettings | undefined,
): GroupIdsSeen => {
  const managed = new Set(
    (groups?.map ?? []).map((entry) => entry.group.toLowerCase()),
  );
  const byName = new Map<string, GroupSeen>();
  return {
    byName,
    note: (seen) =>
      managed.size === 0 || seen === undefined
        ? Effect.void
        : Effect.sync(() => {
          for (const { id, name, automatic } of seen) {
            const key = name.toLowerCase();
            if (managed.has(key)) byName.set(key, { id, automatic });
          }
        }),
  };
};
