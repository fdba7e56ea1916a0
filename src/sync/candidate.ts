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
import type { Cleaned } from "../domain/terminal.ts";
import { normalizeUsername } from "./normalize.ts";
import type { TextSpill } from "./spill.ts";
import {
  desiredBio,
  type DesiredProfile,
  desiredProfile,
  removals,
} from "./profile.ts";

/**
 * What a run keeps of a Moodle user beside the desired profile: a run holds
 * every user to its end, and the record's other fields (picture URL, names
 * in parts, city, custom fields) were half of what 100,000 users kept.
 */
export type KeptUser = Pick<MoodleUser, "id" | "username" | "suspended">;

/** A Moodle record in list order, with what every later stage needs. */
export type Candidate =
  | {
    readonly _tag: "Malformed";
    readonly record: Extract<MoodleRecord, { _tag: "Malformed" }>;
  }
  | {
    readonly _tag: "User";
    readonly user: KeptUser;
    readonly username: string;
    readonly normalized: string;
    readonly desired: DesiredProfile;
  }
  | { readonly _tag: "NoUsername"; readonly user: MoodleUser };

export const candidateOf = (
  record: MoodleRecord,
  settings: Settings,
  /** Where long descriptions wait for their users' turns. */
  spill?: TextSpill,
): Candidate => {
  if (record._tag === "Malformed") return { _tag: "Malformed", record };
  const user = record.user;
  if (!user.username) return { _tag: "NoUsername", user };
  return {
    _tag: "User",
    // The description is held once, by the bio.
    user: { id: user.id, username: user.username, suspended: user.suspended },
    username: user.username,
    normalized: normalizeUsername(user.username, settings.username),
    desired: new BioOnDemand(user, settings.location, spill),
  };
};

/**
 * The bios converted last, oldest first: more than the users a run has in
 * flight (defaultConcurrencyCap), far fewer than it holds.
 */
const recentBios = new Map<BioOnDemand, Cleaned>();
const recentBiosKept = 512;

/** Descriptions longer than this (UTF-16 units) wait in the spill. */
const spillFrom = 200;

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
  /** Undefined when it waits in the spill. */
  readonly #description: string | undefined;
  /** Where in the spill, as numbers: an object for it cost 72 bytes a user. */
  readonly #spilledAt: number;
  readonly #spilledBytes: number;
  readonly #spill: TextSpill | undefined;
  readonly #format: number | undefined;
  readonly #removed: DesiredProfile["removed"];

  constructor(
    user: MoodleUser,
    rules: Settings["location"],
    spill: TextSpill | undefined,
  ) {
    // An empty plain-text description converts to "" without a parse.
    const rest = desiredProfile(
      { ...user, description: "", descriptionformat: DescriptionFormat.plain },
      rules,
    );
    this.name = rest.name;
    this.location = rest.location;
    this.email = rest.email;
    const description = user.description;
    // A short one costs less held than its place in the spill.
    const spilled = spill !== undefined && description !== undefined &&
        description.length > spillFrom
      ? spill.put(description)
      : undefined;
    this.#description = spilled === undefined ? description : undefined;
    this.#spilledAt = spilled?.offset ?? -1;
    this.#spilledBytes = spilled?.bytes ?? 0;
    this.#spill = spill;
    this.#format = user.descriptionformat;
    this.#removed = rest.removed;
  }

  /** Converted once per turn: a user's plan, row and check all read it. */
  get #converted(): Cleaned {
    const recent = recentBios.get(this);
    if (recent !== undefined) return recent;
    const description = this.#spilledAt < 0
      ? this.#description
      : this.#spill?.get({
        offset: this.#spilledAt,
        bytes: this.#spilledBytes,
      });
    const converted = desiredBio(description, this.#format);
    recentBios.set(this, converted);
    if (recentBios.size > recentBiosKept) {
      recentBios.delete(recentBios.keys().next().value!);
    }
    return converted;
  }

  get bio(): string {
    return this.#converted.text;
  }

  get removed(): DesiredProfile["removed"] {
    return removals({
      name: this.#removed?.name ?? 0,
      location: this.#removed?.location ?? 0,
      bio: this.#converted.removed,
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
