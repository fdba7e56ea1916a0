/**
 * What a run learns from Moodle's list before the forum is asked anything:
 * the usernames and addresses users share, and each user of the batch
 * classified once under one rules object (its patterns compiled once), with
 * the leavers routed to their own step.
 */
import type { Settings } from "../config/Settings.ts";
import { excludesSuspended, routeLeavers } from "../leavers/route.ts";
import type { Candidate, UserCandidate } from "./candidate.ts";
import { type Classified, classify } from "./classify.ts";
import type { RunOptions } from "./context.ts";
import { emailSharers } from "./match.ts";
import { findCollisions } from "./select.ts";

export interface Triage {
  /** Lower-case forum username -> the Moodle usernames that become it. */
  readonly collisions: ReadonlyMap<string, ReadonlyArray<string>>;
  /** Lower-case addresses more than one Moodle user has. */
  readonly emailsShared: ReadonlyMap<string, ReadonlyArray<string>>;
  /** The batch's users for the profile stream, settled or not. */
  readonly classified: ReadonlyArray<Classified>;
  /** The batch's leavers, for the leavers step. */
  readonly leaving: ReadonlyArray<UserCandidate>;
  /** The users whose profile needs the forum. */
  readonly toProcess: ReadonlyArray<UserCandidate>;
}

export const triage = (
  candidates: ReadonlyArray<Candidate>,
  batch: ReadonlyArray<Candidate>,
  settings: Settings,
  options: Pick<RunOptions, "excludedByFile">,
): Triage => {
  const users = candidates.flatMap((c) => c._tag === "User" ? [c] : []);
  const collisions = findCollisions(
    users.map((c) => ({
      moodleUsername: c.username,
      discourseUsername: c.normalized,
    })),
  );
  const rules = {
    exclusions: {
      patterns: [...settings.exclude.usernames, ...options.excludedByFile],
      suspended: excludesSuspended(settings),
    },
    collisions,
    match: settings.match,
  };
  const { profile: classified, suspended: leaving } = routeLeavers(
    batch.map((candidate) => classify(candidate, rules)),
    settings.deprovision,
  );
  return {
    collisions,
    emailsShared: emailSharers(
      users.map((c) => ({ username: c.username, email: c.desired.email })),
    ),
    classified,
    leaving,
    toProcess: classified.flatMap((c) =>
      c._tag === "NeedsForum" ? [c.candidate] : []
    ),
  };
};
