import { Context, Schema } from "effect";

/**
 * How a field is synced: `overwrite` makes Discourse equal Moodle,
 * `fill-empty` writes only where Discourse holds nothing, `off` never writes.
 */
export const FieldPolicy = Schema.Literal("overwrite", "fill-empty", "off");
export type FieldPolicy = typeof FieldPolicy.Type;

export const SyncedField = Schema.Literal("name", "location", "bio", "email");
export type SyncedField = typeof SyncedField.Type;
export const syncedFields: ReadonlyArray<SyncedField> = [
  "name",
  "location",
  "bio",
  "email",
];

const PositiveInt = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1));
const NonNegativeInt = Schema.Int.pipe(Schema.greaterThanOrEqualTo(0));

const policy = Schema.optionalWith(FieldPolicy, {
  default: () => "overwrite" as const,
});

/** `settings.json`, as decoded; every default applied. */
export const Settings = Schema.Struct({
  env: Schema.optionalWith(Schema.NonEmptyTrimmedString, {
    default: () => "development",
  }),
  moodle: Schema.Struct({
    endpoint: Schema.NonEmptyTrimmedString,
    token: Schema.Redacted(Schema.NonEmptyTrimmedString),
  }),
  discourse: Schema.Struct({
    url: Schema.NonEmptyTrimmedString,
    apiKey: Schema.Redacted(Schema.NonEmptyTrimmedString),
    apiUser: Schema.optionalWith(Schema.NonEmptyTrimmedString, {
      default: () => "system",
    }),
    requestsPerMinute: Schema.optionalWith(PositiveInt, { default: () => 60 }),
  }),
  batchSize: Schema.optionalWith(NonNegativeInt, { default: () => 10 }),
  concurrency: Schema.optionalWith(PositiveInt, { default: () => 4 }),
  logDir: Schema.optionalWith(Schema.NonEmptyTrimmedString, {
    default: () => ".",
  }),
  exclude: Schema.optionalWith(
    Schema.Struct({
      usernames: Schema.optionalWith(Schema.Array(Schema.String), {
        default: () => [],
      }),
      file: Schema.optional(Schema.String),
      suspended: Schema.optionalWith(Schema.Boolean, { default: () => true }),
    }),
    { default: () => ({ usernames: [], suspended: true }) },
  ),
  fields: Schema.optionalWith(
    Schema.Struct({
      name: policy,
      location: policy,
      bio: policy,
      email: policy,
    }),
    {
      default: () => ({
        name: "overwrite" as const,
        location: "overwrite" as const,
        bio: "overwrite" as const,
        email: "overwrite" as const,
      }),
    },
  ),
  location: Schema.optionalWith(
    Schema.Struct({
      country: Schema.optionalWith(Schema.Literal("code", "name"), {
        default: () => "code" as const,
      }),
      locale: Schema.optionalWith(Schema.String, { default: () => "en" }),
    }),
    { default: () => ({ country: "code" as const, locale: "en" }) },
  ),
  username: Schema.optionalWith(
    Schema.Struct({
      maxLength: Schema.optionalWith(
        Schema.Int.pipe(Schema.between(3, 60)),
        { default: () => 20 },
      ),
      minLength: Schema.optionalWith(
        Schema.Int.pipe(Schema.between(1, 60)),
        { default: () => 3 },
      ),
    }),
    { default: () => ({ maxLength: 20, minLength: 3 }) },
  ),
});
export type Settings = typeof Settings.Type;

/** The settings this run uses, after the file, the environment and flags. */
export class CurrentSettings extends Context.Tag("CurrentSettings")<
  CurrentSettings,
  Settings
>() {}
