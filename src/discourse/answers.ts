/**
 * Reading what Discourse says: its own words in an error answer, how long a
 * 429 asks to wait, and a 2xx body decoded by its Schema. Server text is the
 * only outside input in messages, so every word read here is scrubbed of
 * secrets before it is cut and shown with its control characters escaped.
 */
import { Either, Option, Schema } from "effect";
import { describeParseError } from "../parseProblems.ts";
import type { Scrub } from "../domain/secrets.ts";
import { terminalSafe } from "../domain/terminal.ts";
import { ErrorBody } from "./schema.ts";

const excerptLength = 200;

/**
 * Collapses whitespace, drops HTML tags, shows control characters escaped
 * (server text is terminal input) and cuts the text to an excerpt.
 */
export const excerpt = (text: string, max: number = excerptLength): string => {
  const looksLikeHtml = /^\s*</.test(text);
  const plain = terminalSafe(
    (looksLikeHtml ? text.replace(/<[^>]*>/g, " ") : text)
      .replace(/\s+/g, " ")
      .trim(),
  );
  return plain.length > max ? `${plain.slice(0, max)}…` : plain;
};

const quotedExcerpt = (text: string) =>
  text.trim() === "" ? "an empty body" : `"${excerpt(text)}"`;

const parseJson = (text: string): Option.Option<unknown> => {
  try {
    return Option.some(JSON.parse(text));
  } catch {
    return Option.none();
  }
};

const decodeErrorBody = Schema.decodeUnknownOption(ErrorBody);

const MessageBody = Schema.Struct({ message: Schema.String });
const decodeMessageBody = Schema.decodeUnknownOption(MessageBody);

/**
 * Discourse's own explanation in an error answer: JSON `errors`, or the
 * text. `scrub` runs on each decoded string before it is cut, so neither an
 * escaped secret nor half of one survives.
 */
export const serverWords = (
  text: string,
  scrub: Scrub = (text) => text,
): ReadonlyArray<string> => {
  const json = parseJson(text);
  if (Option.isSome(json)) {
    const body = decodeErrorBody(json.value);
    if (Option.isSome(body) && body.value.errors?.length) {
      return body.value.errors.map((words) => excerpt(scrub(words)));
    }
    const message = decodeMessageBody(json.value);
    if (Option.isSome(message) && message.value.message.trim()) {
      return [excerpt(scrub(message.value.message))];
    }
  }
  const plain = excerpt(scrub(text));
  return plain === "" ? [] : [plain];
};

/** Discourse's words in quotes, or that it gave none. */
export const quoted = (words: ReadonlyArray<string>) =>
  words.length === 0 ? "no explanation given" : `"${words.join("; ")}"`;

/**
 * Discourse also answers error_type invalid_access for plain "not permitted",
 * so only its bad-credentials sentence marks the key or user as wrong.
 */
export const isInvalidCredentials = (text: string): boolean =>
  /api username or key is invalid/i.test(text);

/**
 * Milliseconds to wait after a 429: `Retry-After` (seconds or an HTTP date) or the
 * JSON `extras.wait_seconds`, the longer when both are present.
 */
export const rateLimitWaitMillis = (
  headers: Readonly<Record<string, string>>,
  text: string,
  now: number,
): Option.Option<number> => {
  const fromHeader = Option.fromNullable(headers["retry-after"]).pipe(
    Option.flatMap((value) => {
      const seconds = Number(value.trim());
      if (value.trim() !== "" && Number.isFinite(seconds)) {
        return Option.some(Math.max(0, seconds * 1000));
      }
      const date = Date.parse(value);
      return Number.isNaN(date)
        ? Option.none()
        : Option.some(Math.max(0, date - now));
    }),
  );
  const fromBody = parseJson(text).pipe(
    Option.flatMap(decodeErrorBody),
    Option.flatMap((body) => Option.fromNullable(body.extras?.wait_seconds)),
    Option.filter(Number.isFinite),
    Option.map((seconds) => Math.max(0, seconds * 1000)),
  );
  const waits = [fromHeader, fromBody].flatMap(Option.toArray);
  return waits.length === 0 ? Option.none() : Option.some(Math.max(...waits));
};

/** Reads a 2xx body: the value, or in words why it is not one. */
export type BodyReader<A> = (text: string) => Either.Either<A, string>;

/** A JSON body of `schema`'s shape; what is wrong is said field by field. */
export const jsonBody = <A, I>(
  schema: Schema.Schema<A, I>,
  scrub: Scrub,
): BodyReader<A> => {
  const decode = Schema.decodeUnknownEither(schema);
  return (text) =>
    Option.match(parseJson(text), {
      onNone: () => Either.left(`not JSON: ${quotedExcerpt(scrub(text))}`),
      onSome: (value) =>
        Either.mapLeft(
          decode(value),
          (error) =>
            `unexpected shape: ${
              excerpt(
                scrub(describeParseError(error, "the answer", scrub)),
                300,
              )
            }`,
        ),
    });
};

/** For answers whose body says nothing (an empty 200). */
export const ignoredBody: BodyReader<void> = () => Either.void;
