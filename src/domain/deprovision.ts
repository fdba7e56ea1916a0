/**
 * `deprovision`: what the sync does to the forum accounts of Moodle users who
 * left. Absent, everything is off and the profile sync is as before.
 */
import { Schema } from "effect";
import { expecting } from "./expecting.ts";

/** What the leavers step does; the settings' `deprovision` block. */
export interface DeprovisionPolicy {
  /** `"off"` leaves such users to `exclude.suspended`, as before. */
  readonly suspendedInMoodle: "suspend" | "off";
  readonly goneFromMoodle: "suspend" | "off";
  /** The suspension reason; also how our suspensions are recognised later. */
  readonly reason: string;
  readonly reactivate: boolean;
}

/** Discourse refuses longer reasons (suspend.json, at most 300 characters). */
export const maxReasonLength = 300;

/** Discourse has no "forever": a date no school year reaches. */
export const suspendUntil = "3000-01-01";

/** The reason the sync writes, and so recognises as its own later. */
export const defaultReason = "Account closed in Moodle";

const action = Schema.optionalWith(
  Schema.Literal("suspend", "off").annotations(expecting('"suspend" or "off"')),
  { default: () => "off" as const },
);

export const DeprovisionSettings = Schema.Struct({
  suspendedInMoodle: action,
  goneFromMoodle: action,
  reason: Schema.optionalWith(
    Schema.NonEmptyTrimmedString.pipe(Schema.maxLength(maxReasonLength))
      .annotations(
        expecting(
          `a non-empty text of at most ${maxReasonLength} characters (Discourse's limit)`,
        ),
      ),
    { default: () => defaultReason },
  ),
  reactivate: Schema.optionalWith(
    Schema.Boolean.annotations(expecting("true or false")),
    { default: () => false },
  ),
}).annotations({
  message: () =>
    "an object with suspendedInMoodle, goneFromMoodle, reason, reactivate",
});

/** Everything off: the settings' default. */
export const deprovisionOff: DeprovisionPolicy = {
  suspendedInMoodle: "off",
  goneFromMoodle: "off",
  reason: defaultReason,
  reactivate: false,
};

/** The key to spread into the settings Struct. */
export const deprovisionSettingsFields = {
  deprovision: Schema.optionalWith(DeprovisionSettings, {
    default: () => deprovisionOff,
  }),
};

/** Whether a run has anything of the leavers step to do. */
export const leaversOn = (policy: DeprovisionPolicy): boolean =>
  policy.suspendedInMoodle === "suspend" ||
  policy.goneFromMoodle === "suspend" || policy.reactivate;
