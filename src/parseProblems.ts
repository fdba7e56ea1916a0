import { ParseResult } from "effect";

type Issue = ParseResult.ArrayFormatterIssue;

/**
 * The issues of a failed decode, less the noise of optional fields: a bad
 * optional value fails both halves of its union, so it also reports
 * "Expected undefined", which is never what the operator got wrong.
 */
export const meaningfulIssues = (
  error: ParseResult.ParseError,
): ReadonlyArray<Issue> =>
  ParseResult.ArrayFormatter.formatErrorSync(error).filter((issue) =>
    !issue.message.startsWith("Expected undefined, actual")
  );

/** Schema's names for types, in the words of someone reading a record. */
const typeWords: Readonly<Record<string, string>> = {
  boolean: "true or false",
  string: "text",
  number: "a number",
  "an integer": "a whole number",
  "a finite number": "a number",
  null: "null",
  ReadonlyArray: "a list",
  "ReadonlyArray<unknown>": "a list",
  "{ readonly [x: string]: unknown }": "an object",
  object: "an object",
};

const words = (type: string): string =>
  typeWords[type] ?? (type.startsWith("{") ? "an object" : type);

const shortValue = (actual: string): string =>
  actual.length > 60 ? `${actual.slice(0, 60)}...` : actual;

/** `customfields[0].name`, as the record is written. */
const pathText = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (text, key) =>
      typeof key === "number"
        ? `${text}[${key}]`
        : text === ""
        ? String(key)
        : `${text}.${String(key)}`,
    "",
  );

/**
 * One line for everything wrong in a decoded value, a field once each:
 * `suspended: expected true or false, found "no"; fullname: missing`.
 * `whole` names the value itself when the problem is not in a field.
 */
export const describeParseError = (
  error: ParseResult.ParseError,
  whole = "the value",
  /** Runs before values are cut: a cut secret could no longer be found. */
  scrub: (text: string) => string = (text) => text,
): string => {
  const fields = new Map<
    string,
    { expected: Set<string>; found?: string; said: Set<string> }
  >();
  for (const issue of meaningfulIssues(error)) {
    const path = pathText(issue.path) || whole;
    const field = fields.get(path) ?? { expected: new Set(), said: new Set() };
    fields.set(path, field);
    const typed = /^Expected ([\s\S]+?), actual ([\s\S]+)$/.exec(issue.message);
    if (issue._tag === "Missing") {
      field.said.add("missing");
    } else if (issue._tag === "Unexpected") {
      field.said.add("not expected here");
    } else if (typed !== null) {
      field.expected.add(words(typed[1]));
      field.found ??= shortValue(scrub(typed[2]));
    } else {
      field.said.add(shortValue(scrub(issue.message)));
    }
  }
  return [...fields].map(([path, field]) => {
    const parts = [...field.said];
    if (field.expected.size > 0) {
      parts.push(
        `expected ${[...field.expected].join(" or ")}, found ${field.found}`,
      );
    }
    return `${path}: ${parts.join(", ")}`;
  }).join("; ");
};
