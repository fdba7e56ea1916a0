import { Schema } from "effect";

/** Moodle's `descriptionformat`: how `description` is written. */
export const DescriptionFormat = {
  moodle: 0,
  html: 1,
  plain: 2,
  markdown: 4,
} as const;

export const MoodleCustomField = Schema.Struct({
  type: Schema.String,
  value: Schema.optional(Schema.NullOr(Schema.String)),
  displayvalue: Schema.optional(Schema.NullOr(Schema.String)),
  name: Schema.String,
  shortname: Schema.String,
});

/**
 * One user as `core_user_get_users` returns it. Moodle omits every optional
 * field that is unset or hidden from the token's user, so all but `id` and
 * `fullname` are optional; unknown extra fields are tolerated.
 */
export const MoodleUser = Schema.Struct({
  id: Schema.Int,
  fullname: Schema.String,
  username: Schema.optional(Schema.String),
  firstname: Schema.optional(Schema.String),
  lastname: Schema.optional(Schema.String),
  email: Schema.optional(Schema.String),
  idnumber: Schema.optional(Schema.String),
  department: Schema.optional(Schema.String),
  institution: Schema.optional(Schema.String),
  auth: Schema.optional(Schema.String),
  suspended: Schema.optional(Schema.Boolean),
  confirmed: Schema.optional(Schema.Boolean),
  lang: Schema.optional(Schema.String),
  timezone: Schema.optional(Schema.String),
  description: Schema.optional(Schema.String),
  descriptionformat: Schema.optional(Schema.Int),
  city: Schema.optional(Schema.String),
  country: Schema.optional(Schema.String),
  firstaccess: Schema.optional(Schema.Number),
  lastaccess: Schema.optional(Schema.Number),
  profileimageurl: Schema.optional(Schema.String),
  customfields: Schema.optional(Schema.Array(MoodleCustomField)),
});
export type MoodleUser = typeof MoodleUser.Type;

export const MoodleWarning = Schema.Struct({
  item: Schema.optional(Schema.String),
  itemid: Schema.optional(Schema.Union(Schema.Number, Schema.String)),
  warningcode: Schema.String,
  message: Schema.String,
});
export type MoodleWarning = typeof MoodleWarning.Type;

/** The body Moodle answers, with HTTP 200, when a call fails. */
export const MoodleException = Schema.Struct({
  exception: Schema.String,
  errorcode: Schema.String,
  message: Schema.String,
  debuginfo: Schema.optional(Schema.NullOr(Schema.String)),
});
export type MoodleException = typeof MoodleException.Type;

/**
 * A record as it came from Moodle, before decoding: a malformed one must not
 * sink the whole fetch, so it travels on as that user's error.
 */
export type MoodleRecord =
  | { readonly _tag: "Valid"; readonly user: MoodleUser }
  | {
    readonly _tag: "Malformed";
    /** Whatever could be read of the record, for the log row. */
    readonly id: number | undefined;
    readonly username: string | undefined;
    readonly problem: string;
  };
