import fs from "node:fs";
import { Data, Effect } from "effect";
import { dieWhenDenied } from "./permissions.ts";
import { describeBytes } from "./http/guarded.ts";

/**
 * Reading the files an operator names (settings, exclusion list, a log to
 * revert). A path can name anything: `/dev/zero` never ends, a FIFO blocks
 * the open until someone writes (and the process then ignores SIGTERM), a
 * directory fails with a puzzling error. So only regular files are read, and
 * never more than a cap.
 */

/** The caps: far above any real file of each kind, far below memory trouble. */
export const fileLimits = {
  settings: 1024 * 1024,
  exclusionList: 10 * 1024 * 1024,
  applyLog: 200 * 1024 * 1024,
  /** The MAC beside an apply log: one line. */
  logSeal: 64 * 1024,
} as const;

/** Why a file was not read. */
export type FileRefusal =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "NotRegular"; readonly kind: string }
  | { readonly _tag: "TooLarge"; readonly limitBytes: number }
  | { readonly _tag: "Unreadable"; readonly reason: string };

export class SmallFileError extends Data.TaggedError("SmallFileError")<{
  readonly path: string;
  readonly refusal: FileRefusal;
}> {
  /** What is wrong with the file, for "found ..." in an operator message. */
  get found(): string {
    return describeRefusal(this.refusal);
  }

  override get message(): string {
    return `${this.path}: ${this.found}`;
  }
}

const describeRefusal = (refusal: FileRefusal): string => {
  switch (refusal._tag) {
    case "Missing":
      return "no such file";
    case "NotRegular":
      return `${refusal.kind}, not a regular file`;
    case "TooLarge":
      return `a file larger than ${describeBytes(refusal.limitBytes)}`;
    case "Unreadable":
      return `a file that cannot be read (${refusal.reason})`;
  }
};

const kindOf = (stat: fs.Stats): string =>
  stat.isDirectory()
    ? "a directory"
    : stat.isFIFO()
    ? "a named pipe (FIFO)"
    : stat.isCharacterDevice() || stat.isBlockDevice()
    ? "a device"
    : stat.isSocket()
    ? "a socket"
    : "a special file";

const refusalOf = (error: unknown): FileRefusal => {
  const code = typeof error === "object" && error !== null && "code" in error
    ? String(error.code)
    : "";
  if (code === "ENOENT") return { _tag: "Missing" };
  if (code === "EISDIR") return { _tag: "NotRegular", kind: "a directory" };
  return {
    _tag: "Unreadable",
    reason: code !== ""
      ? code
      : error instanceof Error
      ? error.message
      : String(error),
  };
};

/**
 * The file's bytes, when `path` names a regular file of at most
 * `limitBytes`. Opened non-blocking, so a FIFO cannot hang the open, and
 * checked on the opened descriptor, so nothing swapped in after a check is
 * read. The cap holds while reading too: a file that grows, or a regular
 * file whose size the kernel does not report (/proc), stops at the cap.
 */
export const readSmallFileBytes = (
  path: string,
  limitBytes: number,
): Effect.Effect<Uint8Array, SmallFileError> =>
  // A refusal by Deno's flags is not the file's fault: the entry point
  // names the missing flag.
  dieWhenDenied(Effect.try({
    try: (): Uint8Array => {
      const fd = fs.openSync(
        path,
        fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0),
      );
      try {
        const stat = fs.fstatSync(fd);
        if (!stat.isFile()) {
          throw new SmallFileError({
            path,
            refusal: { _tag: "NotRegular", kind: kindOf(stat) },
          });
        }
        const tooLarge = new SmallFileError({
          path,
          refusal: { _tag: "TooLarge", limitBytes },
        });
        if (stat.size > limitBytes) throw tooLarge;
        const chunks: Array<Uint8Array> = [];
        let total = 0;
        const chunk = new Uint8Array(1024 * 1024);
        for (;;) {
          const n = fs.readSync(fd, chunk, 0, chunk.length, null);
          if (n === 0) break;
          total += n;
          if (total > limitBytes) throw tooLarge;
          chunks.push(chunk.slice(0, n));
        }
        const bytes = new Uint8Array(total);
        let at = 0;
        for (const part of chunks) {
          bytes.set(part, at);
          at += part.length;
        }
        return bytes;
      } finally {
        fs.closeSync(fd);
      }
    },
    catch: (error) => error,
  })).pipe(
    Effect.mapError((error) =>
      error instanceof SmallFileError
        ? error
        : new SmallFileError({ path, refusal: refusalOf(error) })
    ),
  );

/** The file's text (UTF-8), on the terms of `readSmallFileBytes`. */
export const readSmallFile = (
  path: string,
  limitBytes: number,
): Effect.Effect<string, SmallFileError> =>
  Effect.map(
    readSmallFileBytes(path, limitBytes),
    (bytes) => new TextDecoder().decode(bytes),
  );
