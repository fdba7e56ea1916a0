import { Effect, Option } from "effect";
import { Discourse, type DiscourseError } from "../discourse/Discourse.ts";
import type { DiscourseUser, ProfileUpdate } from "../discourse/schema.ts";
import type { FieldChange } from "./diff.ts";

/** Discourse's own limits (user.rb): caught here rather than as a 422. */
export const fieldLimits = { name: 255, location: 3000, bio: 3000 } as const;

/** Discourse's EmailAddressValidator (lib/email_address_validator.rb). */
const discourseEmail =
  /^[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/;

/** Changes Discourse is known to refuse, described for the operator. */
export const limitViolations = (
  changes: ReadonlyArray<FieldChange>,
): ReadonlyArray<string> =>
  changes.flatMap((change) => {
    if (change.field === "email") {
      return discourseEmail.test(change.after.trim()) ? [] : [
        `email ${
          JSON.stringify(change.after)
        } is not an address Discourse accepts: correct it in Moodle`,
      ];
    }
    const limit = fieldLimits[change.field];
    const length = [...change.after].length;
    return length > limit
      ? [
        `${change.field} is ${length} characters, Discourse accepts at most ${limit}: shorten it in Moodle`,
      ]
      : [];
  });

const profileUpdate = (changes: ReadonlyArray<FieldChange>): ProfileUpdate =>
  Object.fromEntries(changes.flatMap((change) => {
    switch (change.field) {
      case "name":
        return [["name", change.after]];
      case "location":
        return [["location", change.after]];
      case "bio":
        return [["bio_raw", change.after]];
      case "email":
        return [];
    }
  }));

/** What the writes did: the profile as stored, and whether email was asked. */
export interface Applied {
  readonly stored: Option.Option<DiscourseUser>;
  readonly emailRequested: Option.Option<string>;
}

/** Writes that failed after others had succeeded: the log must say both. */
export class PartialWrite {
  readonly _tag = "PartialWrite";
  constructor(
    readonly written: ReadonlyArray<string>,
    readonly error: DiscourseError,
  ) {}
}

/**
 * One profile update carrying every changed field, then one email change
 * request. The update returns the user as stored, which verification uses,
 * so no re-read is needed.
 */
export const applyChanges = (
  username: string,
  changes: ReadonlyArray<FieldChange>,
): Effect.Effect<Applied, DiscourseError | PartialWrite, Discourse> =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const profileChanges = changes.filter((c) => c.field !== "email");
    const emailChange = changes.find((c) => c.field === "email");
    const stored = profileChanges.length
      ? Option.some(
        yield* discourse.updateProfile(username, profileUpdate(profileChanges)),
      )
      : Option.none();
    if (!emailChange) return { stored, emailRequested: Option.none() };
    yield* discourse.requestEmailChange(username, emailChange.after).pipe(
      Effect.mapError((error) =>
        Option.isSome(stored)
          ? new PartialWrite(profileChanges.map((c) => c.field), error)
          : error
      ),
    );
    return { stored, emailRequested: Option.some(emailChange.after) };
  });
