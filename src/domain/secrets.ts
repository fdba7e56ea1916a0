/**
 * The one scrubber for secrets in text: every string that reaches stdout,
 * stderr or the CSV passes through it, whichever client or stage made it.
 *
 * Servers echo what they were sent, and not always as it was sent: a JSON
 * body may escape any character (`\u005f`), a URL or form percent-encodes,
 * an HTML page uses entities. So the text is read through those encodings
 * and a secret found in the decoded reading is hidden where it stands in the
 * original, whatever mix of forms spells it.
 */
import { Redacted } from "effect";

export const hidden = "(hidden)";

/** Secrets shorter than this would hide ordinary words; settings refuse them anyway. */
const shortest = 4;

/** One character of the decoded reading, and the span of text it came from. */
interface Unit {
  readonly code: number;
  readonly start: number;
  readonly end: number;
}

const jsonEscapes: Readonly<Record<string, number>> = {
  '"': 0x22,
  "\\": 0x5c,
  "/": 0x2f,
  b: 0x08,
  f: 0x0c,
  n: 0x0a,
  r: 0x0d,
  t: 0x09,
};

const namedEntities: Readonly<Record<string, number>> = {
  amp: 0x26,
  quot: 0x22,
  apos: 0x27,
  lt: 0x3c,
  gt: 0x3e,
  plus: 0x2b,
  sol: 0x2f,
  equals: 0x3d,
};

const hex = /^[0-9a-fA-F]+$/;

/** `digits` hex digits after a prefix of `prefix` characters at `at`. */
const hexEscape = (
  text: string,
  at: number,
  prefix: number,
  digits: number,
): { code: number; length: number } | undefined => {
  const found = text.slice(at + prefix, at + prefix + digits);
  return found.length === digits && hex.test(found)
    ? { code: parseInt(found, 16), length: prefix + digits }
    : undefined;
};

/** The escape starting at `at`, if any: its code unit and length. */
const escapeAt = (
  text: string,
  at: number,
): { code: number; length: number } | undefined => {
  const char = text[at];
  if (char === "\\") {
    const next = text[at + 1];
    if (next === "u") return hexEscape(text, at, 2, 4);
    if (next === "x") return hexEscape(text, at, 2, 2);
    const code = next === undefined ? undefined : jsonEscapes[next];
    return code === undefined ? undefined : { code, length: 2 };
  }
  if (char === "%") return hexEscape(text, at, 1, 2);
  if (char === "&") {
    const end = text.indexOf(";", at);
    if (end === -1 || end - at > 10) return undefined;
    const name = text.slice(at + 1, end);
    const code = name.startsWith("#x") || name.startsWith("#X")
      ? hex.test(name.slice(2)) ? parseInt(name.slice(2), 16) : undefined
      : name.startsWith("#")
      ? /^[0-9]+$/.test(name.slice(1)) ? parseInt(name.slice(1), 10) : undefined
      : namedEntities[name.toLowerCase()];
    return code === undefined || code > 0xffff
      ? undefined
      : { code, length: end - at + 1 };
  }
  return undefined;
};

/** The text read through JSON, URL and HTML escapes, one unit a character. */
const decodedUnits = (text: string): Unit[] => {
  const units: Unit[] = [];
  for (let at = 0; at < text.length;) {
    const escape = escapeAt(text, at);
    if (escape) {
      units.push({ code: escape.code, start: at, end: at + escape.length });
      at += escape.length;
    } else {
      units.push({ code: text.charCodeAt(at), start: at, end: at + 1 });
      at++;
    }
  }
  return units;
};

/** Spans of `text` that spell `secret` in the decoded reading. */
const spansOf = (
  units: ReadonlyArray<Unit>,
  secret: string,
): Array<readonly [number, number]> => {
  const spans: Array<readonly [number, number]> = [];
  const first = secret.charCodeAt(0);
  for (let i = 0; i + secret.length <= units.length; i++) {
    if (units[i].code !== first) continue;
    let j = 1;
    while (
      j < secret.length && units[i + j].code === secret.charCodeAt(j)
    ) j++;
    if (j === secret.length) {
      spans.push([units[i].start, units[i + j - 1].end]);
      i += j - 1;
    }
  }
  return spans;
};

const mayHoldEscapes = /[\\%&]/;

/** Every escape `escapeAt` reads, to decode a whole text at native speed. */
const anyEscape =
  /\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\\["\\/bfnrt]|%[0-9a-fA-F]{2}|&#?[0-9a-zA-Z]{1,8};/g;

/** The decoded reading as one string: whether a secret is in it at all. */
const decodedText = (text: string): string =>
  text.replace(anyEscape, (escape) => {
    const decoded = escapeAt(escape, 0);
    return decoded === undefined || decoded.length !== escape.length
      ? escape
      : String.fromCharCode(decoded.code);
  });

/** Hides every secret, in any of the forms a server may echo it in. */
export type Scrub = (text: string) => string;

export const makeScrubber = (
  secrets: ReadonlyArray<string | Redacted.Redacted<string> | undefined>,
): Scrub => {
  const plain = [
    ...new Set(
      secrets.flatMap((secret) => {
        if (secret === undefined) return [];
        const value = typeof secret === "string"
          ? secret
          : Redacted.value(secret);
        return [value, value.trim()];
      }),
    ),
  ].filter((secret) => secret.length >= shortest)
    // The longest first, so a secret inside another is hidden whole.
    .sort((a, b) => b.length - a.length);
  // Non-ASCII secrets percent-encode as several bytes a unit cannot match:
  // their usual encoded spellings are looked for as they are.
  const literal = [
    ...new Set(
      plain.flatMap((secret) => [
        secret,
        encodeURIComponent(secret),
        new URLSearchParams({ s: secret }).toString().slice(2),
      ]),
    ),
  ].sort((a, b) => b.length - a.length);
  if (plain.length === 0) return (text) => text;
  return (text) => {
    let scrubbed = text;
    for (const form of literal) {
      if (scrubbed.includes(form)) scrubbed = scrubbed.split(form).join(hidden);
    }
    if (!mayHoldEscapes.test(scrubbed)) return scrubbed;
    // Mapping each character back to its spelling is slow: only when needed.
    const decoded = decodedText(scrubbed);
    if (!plain.some((secret) => decoded.includes(secret))) return scrubbed;
    const units = decodedUnits(scrubbed);
    const spans = plain.flatMap((secret) => spansOf(units, secret))
      .sort((a, b) => a[0] - b[0]);
    if (spans.length === 0) return scrubbed;
    let out = "";
    let at = 0;
    for (const [start, end] of spans) {
      if (start < at) {
        at = Math.max(at, end);
        continue;
      }
      out += scrubbed.slice(at, start) + hidden;
      at = end;
    }
    return out + scrubbed.slice(at);
  };
};

/** The secrets of these settings: Moodle's token, the API key, the SSO secret. */
export const settingsSecrets = (settings: {
  readonly moodle: { readonly token: Redacted.Redacted<string> };
  readonly discourse: {
    readonly apiKey: Redacted.Redacted<string>;
    readonly ssoSecret?: Redacted.Redacted<string> | undefined;
  };
}): ReadonlyArray<Redacted.Redacted<string>> => [
  settings.moodle.token,
  settings.discourse.apiKey,
  ...(settings.discourse.ssoSecret === undefined
    ? []
    : [settings.discourse.ssoSecret]),
];

const scrubbers = new WeakMap<object, Scrub>();

/**
 * The scrubber for every secret these settings hold. Settings are read once
 * and never change, so every part of a command shares one scrubber.
 */
export const scrubberFor = (
  settings: Parameters<typeof settingsSecrets>[0],
): Scrub => {
  const known = scrubbers.get(settings);
  if (known !== undefined) return known;
  const scrub = makeScrubber(settingsSecrets(settings));
  scrubbers.set(settings, scrub);
  return scrub;
};
