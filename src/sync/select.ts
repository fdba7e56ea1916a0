/** Which Moodle users this run considers, and which it refuses. Pure. */

export interface ExclusionRules {
  /** `exclude.usernames` plus the exclusion file's lines; `*` is a wildcard, case-insensitive. */
  readonly patterns: ReadonlyArray<string>;
  /** Whether users suspended in Moodle are left out. */
  readonly suspended: boolean;
}

/**
 * The exclusion file: one username or pattern a line; `#` starts a comment
 * (Moodle usernames cannot contain `#`); blank lines ignored.
 */
export function parseExclusionFile(text: string): ReadonlyArray<string> {
  return text
    .split(/\r\n|\r|\n/)
    .map((line) => {
      const comment = line.indexOf("#");
      return (comment === -1 ? line : line.slice(0, comment)).trim();
    })
    .filter((line) => line !== "");
}

const escapeRegExp = (text: string): string =>
  text.replace(/[.+?^${}()|[\]\\]/g, "\\$&");

interface WildcardPattern {
  readonly pattern: string;
  readonly regExp: RegExp;
}

/**
 * A username -> reason matcher built once for the run: exact names are one
 * set lookup, each wildcard pattern one precompiled regular expression.
 */
export function compileExclusions(
  rules: ExclusionRules,
): (username: string) => string | undefined {
  const exact = new Map<string, string>();
  const wildcards: Array<WildcardPattern> = [];
  for (const raw of rules.patterns) {
    const pattern = raw.trim();
    if (pattern === "") continue;
    const lowered = pattern.toLowerCase();
    if (!lowered.includes("*")) {
      if (!exact.has(lowered)) exact.set(lowered, pattern);
      continue;
    }
    const source = lowered.split("*").map(escapeRegExp).join(".*");
    wildcards.push({ pattern, regExp: new RegExp(`^${source}$`, "s") });
  }
  const reasonFor = (pattern: string) => `matches exclusion "${pattern}"`;
  return (username) => {
    const lowered = username.trim().toLowerCase();
    const exactPattern = exact.get(lowered);
    if (exactPattern !== undefined) return reasonFor(exactPattern);
    const wildcard = wildcards.find(({ regExp }) => regExp.test(lowered));
    return wildcard === undefined ? undefined : reasonFor(wildcard.pattern);
  };
}

export interface ExclusionCandidate {
  readonly username?: string;
  readonly suspended?: boolean;
  readonly id: number;
  readonly auth?: string;
}

/** Moodle returns its guest account with every user list. */
const guestUsername = "guest";

/** Compiled matchers per rules object, so repeated calls never rebuild them. */
const compiled = new WeakMap<
  ExclusionRules,
  (username: string) => string | undefined
>();

const matcherFor = (rules: ExclusionRules) => {
  let matcher = compiled.get(rules);
  if (matcher === undefined) {
    matcher = compileExclusions(rules);
    compiled.set(rules, matcher);
  }
  return matcher;
};

/**
 * Why `user` is left out of the sync, or undefined when it is not. A user
 * without a username is not excluded here: the pipeline reports it as an error.
 */
export function exclusionReason(
  user: ExclusionCandidate,
  rules: ExclusionRules,
): string | undefined {
  const username = user.username?.trim().toLowerCase();
  if (username === guestUsername) return "Moodle's guest account";
  if (rules.suspended && user.suspended === true) return "suspended in Moodle";
  if (username === undefined) return undefined;
  return matcherFor(rules)(username);
}

/**
 * Discourse usernames (case-insensitive, as Discourse compares them) that more
 * than one Moodle user would map to, with those Moodle usernames in input order.
 */
export function findCollisions(
  users: ReadonlyArray<
    { readonly moodleUsername: string; readonly discourseUsername: string }
  >,
): ReadonlyMap<string, ReadonlyArray<string>> {
  const byDiscourseName = new Map<string, Array<string>>();
  for (const { moodleUsername, discourseUsername } of users) {
    const key = discourseUsername.toLowerCase();
    const sharing = byDiscourseName.get(key);
    if (sharing === undefined) byDiscourseName.set(key, [moodleUsername]);
    else sharing.push(moodleUsername);
  }
  const collisions = new Map<string, ReadonlyArray<string>>();
  for (const [key, sharing] of byDiscourseName) {
    if (sharing.length > 1) collisions.set(key, sharing);
  }
  return collisions;
}

/**
 * The slice of `items` this run handles. `batchSize` 0 takes everything from
 * `offset` on; `nextOffset` is where the next run starts, undefined once the
 * list is finished. A negative or fractional offset or size is truncated
 * towards zero.
 */
export function selectBatch<T>(
  items: ReadonlyArray<T>,
  offset: number,
  batchSize: number,
): {
  readonly batch: ReadonlyArray<T>;
  readonly nextOffset: number | undefined;
} {
  const start = Math.max(0, Math.trunc(offset) || 0);
  const size = Math.max(0, Math.trunc(batchSize) || 0);
  const end = size === 0 ? items.length : Math.min(items.length, start + size);
  const batch = items.slice(start, end);
  return { batch, nextOffset: end < items.length ? end : undefined };
}
