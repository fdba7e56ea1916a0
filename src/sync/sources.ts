/** What a sync reads before its first user: Moodle's list, the forum's emails. */
import { Effect } from "effect";
import { Moodle } from "../moodle/Moodle.ts";
import type { MoodleRecord } from "../moodle/schema.ts";
import type { Settings } from "../config/Settings.ts";
import { chooseEmailStrategy } from "./fetchDiscourse.ts";
import { startForumEmails } from "./forumEmails.ts";
import { NoMoodleUsers } from "./outcome.ts";
import { Reporter } from "./Reporter.ts";

/**
 * Every Moodle user in id order, for `--user` too: a collision is only seen
 * against the whole list (`ana_garcia` cannot see `ana garcia` otherwise),
 * and the list is one Moodle request that costs no Discourse budget. Each
 * record is turned into what the run keeps of it as it arrives.
 */
export const loadMoodleUsers = <A>(
  keep: (record: MoodleRecord) => A,
) =>
  Effect.gen(function* () {
    const moodle = yield* Moodle;
    const reporter = yield* Reporter;
    const all = yield* moodle.eachUser(keep);
    if (all.records.length === 0) return yield* new NoMoodleUsers();
    for (const warning of all.warnings) {
      yield* reporter.warn(
        `Moodle warning ${warning.warningcode}: ${warning.message}`,
      );
    }
    return all.records;
  });

/** The cheapest way to read the emails of the users that need the forum. */
export const chooseEmailSource = (
  settings: Settings,
  usersToProcess: number,
  /** Lower-case forum usernames; undefined when not known before matching. */
  wanted: ReadonlyArray<string> | undefined,
  moodleUsers: number,
) =>
  Effect.gen(function* () {
    if (settings.fields.email !== "overwrite" || usersToProcess === 0) {
      return { _tag: "none" } as const;
    }
    if (chooseEmailStrategy(usersToProcess, moodleUsers) === "per-user") {
      return { _tag: "per-user" } as const;
    }
    const reporter = yield* Reporter;
    yield* reporter.info(
      "Reading forum emails from the admin user list, alongside the profiles...",
    );
    return {
      _tag: "bulk",
      emails: yield* startForumEmails(
        wanted === undefined ? undefined : new Set(wanted),
        (error) =>
          reporter.warn(
            `The forum's admin user list could not be read to the end (${error.message}); the users not found in it have their emails read one by one.`,
          ),
        moodleUsers,
      ),
    } as const;
  });
