/**
 * `core_user_get_users` answers with every user in one JSON document: 100,000
 * users with HTML bios are hundreds of megabytes. Read whole, that text, its
 * parse and its decode all lived at once (the issue measured 1 GB for the
 * list alone). Here the `users` array is cut into its records as the bytes
 * arrive; each record is parsed and handed on alone, and only what the
 * caller keeps of it stays. Everything around the array (the warnings, an
 * exception reply, whatever else the server sent) is collected as it came,
 * with the array left empty, and read as before once the answer is complete.
 */
import type * as HttpClientError from "@effect/platform/HttpClientError";
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse";
import { Data, Effect } from "effect";
import { type AnswerTooLarge, forEachChunkCapped } from "../http/guarded.ts";

/** Where a record too large to hold lies, and whose it is if that shows. */
export interface OversizedRecord {
  readonly limitBytes: number;
  /** 0 for the array's first record. */
  readonly index: number;
  /** Of the record's first byte in the answer. */
  readonly offset: number;
  readonly id: number | undefined;
  readonly username: string | undefined;
}

/** One record of the users array passed `limitBytes`: reading stopped. */
export class RecordTooLarge extends Data.TaggedError("RecordTooLarge")<
  OversizedRecord
> {}

/** Enough of a record's start to find its id and username. */
const identityBytes = 4096;

/**
 * The id and username at the start of a record cut short. Moodle writes
 * `id` first and `username` soon after; a value not found is undefined.
 */
const identifyRecord = (
  start: string,
): {
  readonly id: number | undefined;
  readonly username: string | undefined;
} => {
  const id = /^\s*\{\s*"id"\s*:\s*(\d{1,15})\s*[,}]/.exec(start)?.[1];
  const quoted = /"username"\s*:\s*("(?:[^"\\]|\\.){0,400}")/.exec(start)?.[1];
  let username: string | undefined;
  try {
    const parsed: unknown = quoted === undefined
      ? undefined
      : JSON.parse(quoted);
    if (typeof parsed === "string") username = parsed;
  } catch {
    // Not a JSON string after all: unnamed.
  }
  return { id: id === undefined ? undefined : Number(id), username };
};

/** Bytes that matter to the structure: JSON's structural bytes are ASCII. */
const quote = 0x22;
const backslash = 0x5c;
const openBrace = 0x7b;
const closeBrace = 0x7d;
const openBracket = 0x5b;
const closeBracket = 0x5d;
const comma = 0x2c;

const isSpace = (byte: number) =>
  byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;

/** `"users"` and a colon, as the last thing before an array opens. */
const usersKeyBefore = /"users"\s*:\s*$/;

/** Enough of what precedes an array to see its key. */
const keyLookBehind = 64;

/** A whole answer read by `UsersArraySplitter`. */
export interface SplitAnswer {
  /** The document with the `users` array emptied: parse it as before. */
  readonly rest: string;
  /** The answer's first bytes, for a message about an answer that is not JSON. */
  readonly head: string;
  readonly bytes: number;
  /** False when a record was not JSON or the document ended inside the array. */
  readonly wellFormed: boolean;
}

/** The most of the answer's start kept for messages. */
const headBytes = 4096;

const concat = (parts: ReadonlyArray<Uint8Array>, size: number) => {
  if (parts.length === 1) return parts[0];
  const all = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.byteLength;
  }
  return all;
};

/**
 * Feed it the answer's chunks in order; `onRecord` gets each element of the
 * top-level object's `users` array, parsed, as soon as its last byte came.
 */
export class UsersArraySplitter {
  readonly #onRecord: (record: unknown) => void;
  readonly #maxRecordBytes: number;
  readonly #decoder = new TextDecoder();
  #rest: Uint8Array[] = [];
  #restSize = 0;
  #head: Uint8Array[] = [];
  #headSize = 0;
  #bytes = 0;
  #wellFormed = true;
  /** Undecided until the first byte that is not whitespace. */
  #isObject: boolean | undefined;
  #inString = false;
  #escaped = false;
  /** Nesting outside the users array, the top-level object being 1. */
  #depth = 0;
  #inArray = false;
  /** After a comma in the array: another element must follow. */
  #needElement = false;
  #elementOpen = false;
  /** Nesting within the current element. */
  #elementDepth = 0;
  #element: Uint8Array[] = [];
  #elementSize = 0;
  /** Where the current element started in the answer. */
  #elementOffset = 0;
  /** Elements closed so far. */
  #records = 0;
  #oversized: OversizedRecord | undefined;

  /**
   * `maxRecordBytes` bounds the one record held at a time: past it, nothing
   * more is read (see `oversized`).
   */
  constructor(
    onRecord: (record: unknown) => void,
    maxRecordBytes = Number.POSITIVE_INFINITY,
  ) {
    this.#onRecord = onRecord;
    this.#maxRecordBytes = maxRecordBytes;
  }

  /** The record that passed the limit, once one has: the rest is ignored. */
  get oversized(): OversizedRecord | undefined {
    return this.#oversized;
  }

  /** `chunk` is not kept: what must outlive this call is copied. */
  push(chunk: Uint8Array): void {
    if (this.#oversized !== undefined) return;
    const chunkOffset = this.#bytes;
    this.#bytes += chunk.byteLength;
    if (this.#headSize < headBytes) {
      const part = chunk.slice(0, headBytes - this.#headSize);
      this.#head.push(part);
      this.#headSize += part.byteLength;
    }
    // Where the run of bytes being collected (for the rest or the current
    // element) started in this chunk.
    let from = 0;
    for (let at = 0; at < chunk.length; at++) {
      const byte = chunk[at];
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (byte === backslash) this.#escaped = true;
        else if (byte === quote) this.#inString = false;
        continue;
      }
      if (this.#inArray) {
        if (
          this.#elementDepth === 0 && (byte === comma || byte === closeBracket)
        ) {
          if (this.#elementOpen) {
            this.#addToElement(chunk, from, at, false);
            if (this.#oversized !== undefined) return;
            this.#closeElement();
          } else if (byte === comma || this.#needElement) {
            this.#wellFormed = false;
          }
          this.#needElement = byte === comma;
          if (byte === closeBracket) {
            // The `]` goes to the rest, which shows an empty array.
            this.#inArray = false;
            this.#depth--;
            from = at;
          } else {
            from = at + 1;
          }
          continue;
        }
        if (isSpace(byte)) continue;
        if (!this.#elementOpen) {
          this.#elementOpen = true;
          this.#elementOffset = chunkOffset + at;
          from = at;
        }
        if (byte === quote) this.#inString = true;
        else if (byte === openBrace || byte === openBracket) {
          this.#elementDepth++;
        } else if (byte === closeBrace || byte === closeBracket) {
          this.#elementDepth--;
        }
        continue;
      }
      if (byte === quote) {
        this.#inString = true;
        continue;
      }
      if (this.#isObject === undefined && !isSpace(byte)) {
        this.#isObject = byte === openBrace;
      }
      if (byte === openBrace || byte === openBracket) this.#depth++;
      else if (byte === closeBrace || byte === closeBracket) this.#depth--;
      if (
        byte === openBracket && this.#depth === 2 && this.#isObject === true &&
        this.#keyIsUsers(chunk, from, at)
      ) {
        // The `[` stays in the rest; its elements do not.
        this.#keep(chunk, from, at + 1);
        from = at + 1;
        this.#inArray = true;
        this.#needElement = false;
      }
    }
    if (!this.#inArray) this.#keep(chunk, from, chunk.length);
    else if (this.#elementOpen) {
      // The record goes on in the next chunk: this one's part is copied.
      this.#addToElement(chunk, from, chunk.length, true);
    }
  }

  /** The answer ended: what surrounds the array, and whether it all parsed. */
  finish(): SplitAnswer {
    if (this.#inArray) this.#wellFormed = false;
    return {
      rest: this.#decoder.decode(concat(this.#rest, this.#restSize)),
      head: this.#decoder.decode(concat(this.#head, this.#headSize)),
      bytes: this.#bytes,
      wellFormed: this.#wellFormed,
    };
  }

  /**
   * A record that ends in this chunk is parsed from a view of it: copies of
   * a whole answer's worth of records would be garbage the collector frees
   * late (the process grew by a quarter of a gigabyte). Only a record's
   * part that must wait for the next chunk is copied.
   */
  #addToElement(
    chunk: Uint8Array,
    from: number,
    to: number,
    copy: boolean,
  ): void {
    if (to <= from) return;
    this.#element.push(copy ? chunk.slice(from, to) : chunk.subarray(from, to));
    this.#elementSize += to - from;
    if (this.#elementSize > this.#maxRecordBytes) {
      const start = concat(this.#element, this.#elementSize).subarray(
        0,
        identityBytes,
      );
      this.#oversized = {
        limitBytes: this.#maxRecordBytes,
        index: this.#records,
        offset: this.#elementOffset,
        ...identifyRecord(this.#decoder.decode(start)),
      };
      this.#element = [];
      this.#elementSize = 0;
    }
  }

  #closeElement(): void {
    this.#elementOpen = false;
    this.#elementDepth = 0;
    const text = this.#decoder.decode(
      concat(this.#element, this.#elementSize),
    );
    this.#element = [];
    this.#elementSize = 0;
    this.#records++;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch {
      this.#wellFormed = false;
      return;
    }
    this.#onRecord(record);
  }

  #keep(chunk: Uint8Array, from: number, to: number): void {
    if (to <= from) return;
    this.#rest.push(chunk.slice(from, to));
    this.#restSize += to - from;
  }

  /** Whether the array opening at `at` is the value of a `users` key. */
  #keyIsUsers(chunk: Uint8Array, from: number, at: number): boolean {
    const parts = [chunk.subarray(Math.max(from, at - keyLookBehind), at)];
    let size = parts[0].byteLength;
    for (
      let index = this.#rest.length - 1;
      index >= 0 && size < keyLookBehind;
      index--
    ) {
      parts.unshift(this.#rest[index]);
      size += this.#rest[index].byteLength;
    }
    return usersKeyBefore.test(this.#decoder.decode(concat(parts, size)));
  }
}

/**
 * Reads `response`'s body through a splitter, counting bytes as they arrive:
 * past `limits.answerBytes` reading stops with AnswerTooLarge, as for any
 * answer, and with RecordTooLarge when one record passes `limits.recordBytes`.
 */
export const splitUsersAnswer = (
  response: HttpClientResponse.HttpClientResponse,
  limits: { readonly answerBytes: number; readonly recordBytes: number },
  onRecord: (record: unknown) => void,
): Effect.Effect<
  SplitAnswer,
  AnswerTooLarge | RecordTooLarge | HttpClientError.ResponseError
> =>
  Effect.suspend(() => {
    const splitter = new UsersArraySplitter(onRecord, limits.recordBytes);
    return forEachChunkCapped(
      response,
      limits.answerBytes,
      (chunk) =>
        Effect.suspend(() => {
          splitter.push(chunk);
          const { oversized } = splitter;
          return oversized === undefined
            ? Effect.void
            : Effect.fail(new RecordTooLarge(oversized));
        }),
    ).pipe(Effect.map(() => splitter.finish()));
  });
