/**
 * The keyed MAC kept beside an apply log (`LOG.csv.mac`): `revert --apply`
 * writes whatever the log says, so it must only trust bytes this tool wrote,
 * for this forum and environment.
 */
import {
  createHash,
  createHmac,
  type Hash,
  timingSafeEqual,
} from "node:crypto";
import { Either, Redacted, Schema } from "effect";
import { forumKey } from "../lock.ts";

const macFormat = "sync-moodle-discourse audit log MAC v1";
const keyLabel = "sync-moodle-discourse audit log MAC key v1";

/**
 * The MAC key: derived from the Discourse API key, a secret of the operator's
 * that the CSV never holds. Rotating the API key leaves older logs
 * unverifiable (README, "Undo: revert").
 */
export const auditMacKey = (apiKey: Redacted.Redacted<string>): Uint8Array =>
  createHmac("sha256", Redacted.value(apiKey)).update(keyLabel).digest();

/** What a log is sealed for, and with which key. */
export interface SealScope {
  readonly key: Uint8Array;
  readonly forum: string;
  readonly env: string;
}

export const sealScope = (
  apiKey: Redacted.Redacted<string>,
  discourseUrl: string,
  env: string,
): SealScope => ({
  key: auditMacKey(apiKey),
  forum: forumKey(discourseUrl),
  env,
});

const SealFile = Schema.Struct({
  format: Schema.Literal(macFormat),
  forum: Schema.String,
  env: Schema.String,
  /** Bytes of the log covered: a killed run leaves a sealed prefix. */
  bytes: Schema.Int.pipe(Schema.nonNegative()),
  rows: Schema.Int.pipe(Schema.nonNegative()),
  mac: Schema.String,
});
type SealFile = typeof SealFile.Type;

const macOf = (
  key: Uint8Array,
  seal: Omit<SealFile, "mac">,
  digest: Uint8Array,
): Uint8Array =>
  createHmac("sha256", key)
    .update(
      JSON.stringify([
        seal.format,
        seal.forum,
        seal.env,
        seal.bytes,
        seal.rows,
      ]),
    )
    .update("\n")
    .update(digest)
    .digest();

/**
 * The MAC of the bytes written so far. A running SHA-256 of the log, then an
 * HMAC over it and the scope: each row costs its own bytes, not the file's.
 */
export class RunningSeal {
  readonly #hash: Hash = createHash("sha256");
  #bytes = 0;
  #lines = 0;

  constructor(readonly scope: SealScope) {}

  /** One header or row, exactly as written to the log. */
  add(line: Uint8Array): void {
    this.#hash.update(line);
    this.#bytes += line.byteLength;
    this.#lines++;
  }

  /** The MAC file's text for everything added so far. */
  text(): string {
    const seal = {
      format: macFormat,
      forum: this.scope.forum,
      env: this.scope.env,
      bytes: this.#bytes,
      rows: Math.max(0, this.#lines - 1),
    } as const;
    const mac = macOf(this.scope.key, seal, this.#hash.copy().digest());
    return `${
      JSON.stringify({ ...seal, mac: Buffer.from(mac).toString("hex") })
    }\n`;
  }
}

/** The MAC file beside a log. */
export const macPath = (logPath: string): string => `${logPath}.mac`;

/** A log that passed: the bytes covered, and how many were appended after. */
export interface SealedLog {
  readonly sealed: Uint8Array;
  readonly unsealedBytes: number;
}

/**
 * Checks a log against its MAC file's text (undefined: no MAC file). Left is
 * why the log is refused, in words for the operator. Pure.
 */
export const checkSeal = (
  log: Uint8Array,
  macText: string | undefined,
  scope: SealScope,
): Either.Either<SealedLog, string> => {
  if (macText === undefined) {
    return Either.left(
      "it has no MAC file beside it (LOG.csv.mac), so nothing shows that this tool wrote it: it was written before logs were sealed, or moved without its .mac file",
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(macText);
  } catch {
    json = undefined;
  }
  const decoded = Schema.decodeUnknownEither(SealFile)(json);
  if (Either.isLeft(decoded)) {
    return Either.left("its MAC file is not one this tool writes");
  }
  const seal = decoded.right;
  // The scope is checked before the MAC only to name the likely cause: a log
  // of another forum was sealed with another forum's key.
  if (seal.forum !== scope.forum || seal.env !== scope.env) {
    return Either.left(
      `it was written for the forum ${seal.forum} (env "${seal.env}"), not ${scope.forum} (env "${scope.env}"): a log is reverted only against the forum and environment it was written for`,
    );
  }
  if (seal.bytes > log.byteLength) {
    return Either.left(
      `it is shorter than what this tool wrote (${log.byteLength} of ${seal.bytes} bytes): it was cut or edited`,
    );
  }
  const sealed = log.subarray(0, seal.bytes);
  const expected = macOf(
    scope.key,
    seal,
    createHash("sha256").update(sealed).digest(),
  );
  const given = Buffer.from(seal.mac, "hex");
  if (
    given.byteLength !== expected.byteLength ||
    !timingSafeEqual(given, expected)
  ) {
    return Either.left(
      "it is not byte-for-byte what this tool wrote: it was edited, or written with another Discourse API key (the MAC key is derived from discourse.apiKey)",
    );
  }
  return Either.right({
    sealed,
    unsealedBytes: log.byteLength - seal.bytes,
  });
};
