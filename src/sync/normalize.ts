/**
 * Moodle username -> Discourse username. The result always passes Discourse's
 * UsernameValidator for the given length rules, and normalizing a result again
 * returns it unchanged. Modelled on Discourse's own UserNameSuggester so that
 * accounts created by DiscourseConnect get the same names.
 */
import { confusingSuffix } from "../domain/usernames.ts";

/** `settings.username`: Discourse's `min_username_length`/`max_username_length`. */
export interface UsernameRules {
  readonly minLength: number;
  readonly maxLength: number;
}

/** Discourse's default `reserved_usernames`. */
export const reservedUsernames: ReadonlyArray<string> = [
  "admin",
  "moderator",
  "administrator",
  "mod",
  "sys",
  "system",
  "community",
  "info",
  "you",
  "name",
  "username",
  "user",
  "nickname",
  "discourse",
  "discourseorg",
  "discourseforum",
  "support",
  "all",
  "here",
];

const reservedSet: ReadonlySet<string> = new Set(reservedUsernames);

/**
 * Discourse refuses these even though they are well-formed; the pipeline
 * reports them instead of inventing another name the user never chose.
 */
export const isReservedUsername = (username: string): boolean =>
  reservedSet.has(username.trim().toLowerCase());

/** Letters NFKD leaves alone because they are not "letter + accent". */
const transliterations: Readonly<Record<string, string>> = {
  "ß": "ss",
  "ẞ": "ss",
  "æ": "ae",
  "Æ": "ae",
  "ø": "o",
  "Ø": "o",
  "ł": "l",
  "Ł": "l",
  "đ": "d",
  "Đ": "d",
  "ð": "d",
  "Ð": "d",
  "þ": "th",
  "Þ": "th",
  "œ": "oe",
  "Œ": "oe",
  "ı": "i",
  "ħ": "h",
  "Ħ": "h",
  "ŧ": "t",
  "Ŧ": "t",
  "ŀ": "l",
  "Ŀ": "l",
};

const combiningMarks = /\p{M}+/gu;
const untransliterated = /[ßẞæÆøØłŁđĐðÐþÞœŒıħĦŧŦŀĿ]/g;
const invalidRun = /[^A-Za-z0-9_.-]+/g;
const specialRun = /[-_.]{2,}/g;
const leadingInvalid = /^[-.]+/;
const trailingSpecials = /[-_.]+$/;

/** Turns non-ASCII letters into their closest ASCII spelling where one exists. */
export const transliterate = (text: string): string =>
  text
    .normalize("NFKD")
    .replace(combiningMarks, "")
    .replace(untransliterated, (letter) => transliterations[letter] ?? letter);

const defuseSuffix = (username: string): string =>
  username.replace(confusingSuffix, (suffix) => `_${suffix.slice(1)}`);

/** Leading `-`/`.` and trailing `-_.` removed, confusing suffix defused. */
const tidyEnds = (username: string): string =>
  defuseSuffix(
    username.replace(leadingInvalid, "").replace(trailingSpecials, ""),
  );

/**
 * A valid Discourse username derived from `moodleUsername`, deterministically.
 * `minLength` above `maxLength` cannot be honoured; `maxLength` wins.
 */
export function normalizeUsername(
  moodleUsername: string,
  rules: UsernameRules,
): string {
  const maxLength = Math.max(1, Math.floor(rules.maxLength));
  const minLength = Math.min(
    maxLength,
    Math.max(1, Math.floor(rules.minLength)),
  );

  const cleaned = tidyEnds(
    transliterate(moodleUsername)
      .replace(invalidRun, "_")
      .toLowerCase()
      .replace(specialRun, "_"),
  );
  const named = cleaned === "" ? "user" : cleaned;
  // Cutting can expose a trailing special or a new confusing suffix.
  const cut = named.length > maxLength
    ? tidyEnds(named.slice(0, maxLength))
    : named;
  // A cut can leave a lone `_`, which tidyEnds empties: padding refills it.
  return cut.padEnd(minLength, "1");
}
