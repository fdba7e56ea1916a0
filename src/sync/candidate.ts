/**
 * A Moodle record as the run carries it: a user with a username (normalized
 * for Discourse, its desired profile), one without, or a malformed record.
 */
import {
  DescriptionFormat,
  type MoodleRecord,
  type MoodleUser,
} from "../moodle/schema.ts";
import type { Settings } from "../config/Settings.ts";
import { normalizeUsername } from "./normalize.ts";
import {
  desiredBio,
  type DesiredProfile,
  desiredProfile,
  removals,
} from "./profile.ts";

/** A Moodle record in list order, with what every later stage needs. */
export type Candidate =
  | {
    readonly _tag: "Malformed";
    readonly record: Extract<MoodleRecord, { _tag: "Malformed" }>;
  }
  | {
    readonly _tag: "User";
    readonly user: MoodleUser;
    readonly username: string;
    readonly normalized: string;
    readonly desired: DesiredProfile;
  }
  | { readonly _tag: "NoUsername"; readonly user: MoodleUser };

export const candidateOf = (
  record: MoodleRecord,
  settings: Settings,
): Candidate => {
  if (record._tag === "Malformed") return { _tag: "Malformed", record };
  const user = record.user;
  if (!user.username) return { _tag: "NoUsername", user };
  return {
    _tag: "User",
    user,
    username: user.username,
    normalized: normalizeUsername(user.username, settings.username),
    desired: new BioOnDemand(user, settings.location),
  };
};

/**
 * A user's desired profile whose bio is converted each time it is read rather
 * than held: a run keeps every candidate to its end, and holding 100,000
 * users' bios in Markdown took the run's peak memory past 1 GB (README,
 * Performance). A bio is read only while its user is planned and verified.
 */
class BioOnDemand implements DesiredProfile {
  readonly name: string;
  readonly location: string;
  readonly email: string;
  readonly #user: MoodleUser;
  readonly #rest: DesiredProfile;

  constructor(user: MoodleUser, rules: Settings["location"]) {
    // An empty plain-text description converts to "" without a parse.
    const rest = desiredProfile(
      { ...user, description: "", descriptionformat: DescriptionFormat.plain },
      rules,
    );
    this.name = rest.name;
    this.location = rest.location;
    this.email = rest.email;
    this.#user = user;
    this.#rest = rest;
  }

  get bio(): string {
    return desiredBio(this.#user.description, this.#user.descriptionformat)
      .text;
  }

  get removed(): DesiredProfile["removed"] {
    return removals({
      name: this.#rest.removed?.name ?? 0,
      location: this.#rest.removed?.location ?? 0,
      bio: desiredBio(this.#user.description, this.#user.descriptionformat)
        .removed,
    });
  }
}

/** A candidate with a username: the only kind that may reach the forum. */
export type UserCandidate = Extract<Candidate, { _tag: "User" }>;

/** Who a row is about, whatever the record held. */
export const identity = (candidate: Candidate) => {
  switch (candidate._tag) {
    case "Malformed":
      return {
        originalUsername: candidate.record.username ?? "",
        normalizedUsername: "",
        fullname: "",
        email: "",
        location: "",
        moodleId: candidate.record.id,
      };
    case "NoUsername":
      return {
        originalUsername: "",
        normalizedUsername: "",
        fullname: candidate.user.fullname,
        email: candidate.user.email ?? "",
        location: "",
        moodleId: candidate.user.id,
      };
    case "User":
      return {
        originalUsername: candidate.username,
        normalizedUsername: candidate.normalized,
        fullname: candidate.desired.name,
        email: candidate.desired.email,
        location: candidate.desired.location,
        moodleId: candidate.user.id,
      };
  }
};

/** Names a user's writes in the journal: a Moodle id is unique in a run. */
export const writeKey = (candidate: Candidate) =>
  `moodle:${identity(candidate).moodleId}`;
