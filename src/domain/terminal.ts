/**
 * Text from Moodle and Discourse is input to the operator's terminal and to
 * the forum's pages: an ESC sequence can rewrite the screen or the window
 * title, a bidirectional override can make "exe.txt" read as "txt.exe".
 * Pure functions; one place decides what counts as unsafe.
 */

/** C0 controls and DEL; tab and newline are tested for separately. */
const isControl = (code: number) => code < 0x20 || code === 0x7f;
/** C1 controls: U+009B is a one-character ESC [ on some terminals. */
const isC1 = (code: number) => code >= 0x80 && code <= 0x9f;
/** Embeddings, overrides and isolates (U+202A-202E, U+2066-2069). */
const isBidiControl = (code: number) =>
  (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069);
/** Line and paragraph separators break a console line like a newline. */
const isSeparator = (code: number) => code === 0x2028 || code === 0x2029;

const escaped = (code: number) =>
  code <= 0xff
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;

const unsafeForTerminal =
  // deno-lint-ignore no-control-regex
  /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;

/**
 * Server text as it may be shown on a console: controls, bidirectional
 * overrides and separators become visible escapes (`\x1b`, `\u202e`). Tab
 * stays; newlines stay only when `keepNewlines` (multi-line messages).
 */
export const terminalSafe = (
  text: string,
  options: { readonly keepNewlines?: boolean } = {},
): string => {
  if (!unsafeForTerminal.test(text)) return text;
  let out = "";
  for (const char of text) {
    const code = char.charCodeAt(0);
    const keep = code === 0x09 || (code === 0x0a && options.keepNewlines);
    out += !keep &&
        (isControl(code) || isC1(code) || isBidiControl(code) ||
          isSeparator(code))
      ? escaped(code)
      : char;
  }
  return out;
};

/** A value cleaned for the forum, and how many characters were removed. */
export interface Cleaned {
  readonly text: string;
  readonly removed: number;
}

/**
 * A value as it may be written to Discourse: C0 controls, DEL and
 * bidirectional overrides removed; tab and newline kept where `multiline`
 * (bios), and CRLF read as a newline there, not as a removed character.
 */
export const forumSafe = (
  text: string,
  options: { readonly multiline?: boolean } = {},
): Cleaned => {
  const source = options.multiline ? text.replace(/\r\n/g, "\n") : text;
  let out = "";
  let removed = 0;
  for (const char of source) {
    const code = char.charCodeAt(0);
    const kept = options.multiline && (code === 0x09 || code === 0x0a);
    if (!kept && (isControl(code) || isBidiControl(code))) {
      removed++;
    } else {
      out += char;
    }
  }
  return removed === 0 ? { text: source, removed: 0 } : { text: out, removed };
};

/** The words a row uses for characters removed from a field. */
export const removalNote = (field: string, removed: number): string =>
  `removed ${removed} control character${
    removed === 1 ? "" : "s"
  } from ${field}`;

/**
 * An object serialised as one JSON line, with what JSON leaves raw but a
 * terminal obeys (bidirectional overrides, separators) written as \u escapes:
 * the same value for a JSON reader, inert on a console.
 */
export const terminalSafeJson = (value: unknown): string =>
  JSON.stringify(value).replace(
    /[\u007f-\u009f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
