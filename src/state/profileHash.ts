/** A fingerprint of a desired profile: pure, no I/O. */
import { createHash } from "node:crypto";

/**
 * Bumped when the canonical form changes, so that hashes written by an older
 * version never compare equal by accident: every user is then rechecked once.
 */
const canonicalFormVersion = "v1";

/**
 * SHA-256 (hex) of the fields as canonical JSON: `[["bio","…"],["email","…"],
 * …]`, keys sorted by code unit, values exactly as given (no trimming, no
 * Unicode normalisation: any difference the forum would store is a change).
 * Key order and object identity do not matter; only names and values do.
 */
export const profileHash = <Fields extends Record<keyof Fields, string>>(
  fields: Fields,
): string => {
  const names = Object.keys(fields).sort();
  const values: Record<string, string> = fields;
  const canonical = JSON.stringify(
    names.map((name) => [name, values[name]]),
  );
  return createHash("sha256").update(`${canonicalFormVersion}\n${canonical}`)
    .digest("hex");
};
