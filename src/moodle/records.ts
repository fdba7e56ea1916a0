import { Either, Schema } from "effect";
import { describeParseError } from "../parseProblems.ts";
import { type MoodleRecord, MoodleUser } from "./schema.ts";

/*
 * What goes to Moodle and what comes back, as plain data: the form a call
 * posts, and the records the users list holds.
 */

/** A web service parameter, as PHP reads nested arrays from a form. */
export type MoodleParam =
  | string
  | number
  | boolean
  | ReadonlyArray<MoodleParam>
  | { readonly [key: string]: MoodleParam };

const isParamList = (
  value: MoodleParam,
): value is ReadonlyArray<MoodleParam> => Array.isArray(value);

/**
 * Flattens parameters into PHP's bracket syntax:
 * `{criteria: [{key: "email", value: "%"}]}` becomes
 * `criteria[0][key]=email`, `criteria[0][value]=%`.
 */
export const moodleFormFields = (
  params: Readonly<Record<string, MoodleParam>>,
): Array<readonly [string, string]> => {
  const fields: Array<readonly [string, string]> = [];
  const add = (name: string, value: MoodleParam): void => {
    if (isParamList(value)) {
      value.forEach((item, index) => add(`${name}[${index}]`, item));
    } else if (typeof value === "object") {
      for (const [key, item] of Object.entries(value)) {
        add(`${name}[${key}]`, item);
      }
    } else {
      // PHP's clean_param reads booleans as 1/0.
      fields.push([
        name,
        typeof value === "boolean" ? (value ? "1" : "0") : String(value),
      ]);
    }
  };
  for (const [name, value] of Object.entries(params)) add(name, value);
  return fields;
};

export const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const decodeUser = Schema.decodeUnknownEither(MoodleUser, { errors: "all" });

/**
 * One raw user record as the pipeline sees it: a malformed one carries
 * whatever identifies it, so it shows up as that user's error instead of
 * failing the whole fetch.
 */
export const toMoodleRecord = (
  raw: unknown,
  scrub: (text: string) => string,
): MoodleRecord => {
  if (!isObject(raw)) {
    return {
      _tag: "Malformed",
      id: undefined,
      username: undefined,
      problem: `the record is ${
        Array.isArray(raw) ? "a list" : `${raw}`
      }, not an object`,
    };
  }
  return Either.match(decodeUser(raw), {
    onRight: (user): MoodleRecord => ({ _tag: "Valid", user }),
    onLeft: (error): MoodleRecord => ({
      _tag: "Malformed",
      id: typeof raw.id === "number" && Number.isInteger(raw.id)
        ? raw.id
        : undefined,
      username: typeof raw.username === "string" ? raw.username : undefined,
      problem: describeParseError(error, "the record", scrub),
    }),
  });
};

export const recordId = (record: MoodleRecord): number | undefined =>
  record._tag === "Valid" ? record.user.id : record.id;

/** By id, as Moodle sends them; items with no readable id go last. */
export const byMoodleId = <T>(
  items: ReadonlyArray<T>,
  idOf: (item: T) => number | undefined,
): Array<T> =>
  [...items].sort((a, b) =>
    (idOf(a) ?? Number.POSITIVE_INFINITY) -
    (idOf(b) ?? Number.POSITIVE_INFINITY)
  );
