import { Option, Schema } from "effect";
import type { SyncedField } from "../domain/fields.ts";

/** Discourse omits blank fields: a missing key means the empty string. */
const OmittedBlank = Schema.optionalWith(Schema.String, {
  default: () => "",
  nullable: true,
});

/** What the sync keeps of one of a profile's groups. */
const ProfileGroup = Schema.Struct({
  id: Schema.Int,
  name: Schema.String,
  automatic: Schema.optionalWith(Schema.Boolean, { default: () => false }),
});
export type ProfileGroup = typeof ProfileGroup.Type;
const profileGroupOf = Schema.decodeUnknownOption(ProfileGroup);

/**
 * `user.groups` of a profile answer: Discourse's BasicGroupSerializer
 * objects for the groups the account belongs to (UserSerializer). Only a
 * hint that saves the groups stage a read, so an entry that is not a group
 * is dropped, and a `groups` that is not a list reads as none: it must never
 * fail the profile read it rides on.
 */
const ProfileGroups = Schema.transform(
  Schema.Unknown,
  Schema.Array(Schema.typeSchema(ProfileGroup)),
  {
    strict: true,
    decode: (held) =>
      Array.isArray(held)
        ? held.flatMap((entry) => Option.toArray(profileGroupOf(entry)))
        : [],
    encode: (groups) => groups,
  },
);

/** `user` of `GET /u/{username}.json` and of `PUT /u/{username}.json`. */
export const DiscourseUser = Schema.Struct({
  id: Schema.Int,
  username: Schema.String,
  name: OmittedBlank,
  location: OmittedBlank,
  website: OmittedBlank,
  bio_raw: OmittedBlank,
  can_edit_name: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  can_change_bio: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  can_change_location: Schema.optionalWith(Schema.Boolean, {
    default: () => true,
  }),
  can_change_website: Schema.optionalWith(Schema.Boolean, {
    default: () => true,
  }),
  suspended_till: Schema.optional(Schema.NullOr(Schema.String)),
  /** Shown to staff viewers (the API user is one) while suspended. */
  suspend_reason: Schema.optional(Schema.NullOr(Schema.String)),
  admin: Schema.optional(Schema.Boolean),
  moderator: Schema.optional(Schema.Boolean),
  groups: Schema.optional(ProfileGroups),
  /**
   * Not in Discourse's own profile answers; some plugins and proxies add
   * it, and then it must be the id asked for.
   */
  external_id: Schema.optional(
    Schema.NullOr(Schema.Union(Schema.String, Schema.Number)),
  ),
});
export type DiscourseUser = typeof DiscourseUser.Type;

/**
 * The synced fields as a profile answer holds them. The email is never in
 * it (Discourse shows it only to a separate request), so the caller says.
 */
export const heldValues = (
  user: DiscourseUser,
  email: string,
): { readonly [F in SyncedField]: string } => ({
  name: user.name,
  location: user.location,
  bio: user.bio_raw,
  email,
});

/** Which synced fields the site lets the API change for this account. */
export const editableFields = (
  user: DiscourseUser,
): { readonly [F in SyncedField]: boolean } => ({
  name: user.can_edit_name,
  location: user.can_change_location,
  bio: user.can_change_bio,
  email: true,
});

export const UserResponse = Schema.Struct({ user: DiscourseUser });

export const UpdateResponse = Schema.Struct({
  success: Schema.optional(Schema.String),
  user: DiscourseUser,
});

export const EmailsResponse = Schema.Struct({
  email: OmittedBlank,
  secondary_emails: Schema.optionalWith(Schema.Array(Schema.String), {
    default: () => [],
  }),
  unconfirmed_emails: Schema.optionalWith(Schema.Array(Schema.String), {
    default: () => [],
  }),
});
export type EmailsResponse = typeof EmailsResponse.Type;

/** A row of `GET /admin/users/list/{flag}.json?show_emails=true`. */
export const AdminUserRow = Schema.Struct({
  id: Schema.Int,
  username: Schema.String,
  name: OmittedBlank,
  email: OmittedBlank,
  secondary_emails: Schema.optionalWith(Schema.Array(Schema.String), {
    default: () => [],
  }),
  active: Schema.optional(Schema.Boolean),
  admin: Schema.optional(Schema.Boolean),
  moderator: Schema.optional(Schema.Boolean),
  staged: Schema.optional(Schema.Boolean),
  suspended_till: Schema.optional(Schema.NullOr(Schema.String)),
});
export type AdminUserRow = typeof AdminUserRow.Type;

export const AdminUserPage = Schema.Array(AdminUserRow);

/**
 * A user of `GET /user-cards.json`: what bulk reads show of a profile. The
 * bio only as `bio_excerpt` (cooked, cut to 350 characters); no email.
 */
export const UserCard = Schema.Struct({
  id: Schema.Int,
  username: Schema.String,
  name: OmittedBlank,
  location: OmittedBlank,
  bio_excerpt: OmittedBlank,
});
export type UserCard = typeof UserCard.Type;

export const UserCardsResponse = Schema.Struct({
  users: Schema.Array(UserCard),
});

/** The error body of most failures: 403, 404, 422 and JSON 429s. */
export const ErrorBody = Schema.Struct({
  errors: Schema.optional(Schema.Array(Schema.String)),
  error_type: Schema.optional(Schema.String),
  extras: Schema.optional(
    Schema.Struct({
      wait_seconds: Schema.optional(Schema.Number),
      time_left: Schema.optional(Schema.String),
    }),
  ),
});
export type ErrorBody = typeof ErrorBody.Type;

/** Profile fields the sync writes with `PUT /u/{username}.json`. */
export interface ProfileUpdate {
  readonly name?: string;
  readonly location?: string;
  readonly bio_raw?: string;
}

/**
 * `GET /admin/users/{id}.json`: the only single-user answer that says which
 * DiscourseConnect external id an account carries. `single_sign_on_record` is
 * null (or absent) when the account has none.
 */
export const AdminUserDetail = Schema.Struct({
  id: Schema.Int,
  username: Schema.String,
  single_sign_on_record: Schema.optional(Schema.NullOr(Schema.Struct({
    external_id: Schema.Union(Schema.String, Schema.Number),
  }))),
});
export type AdminUserDetail = typeof AdminUserDetail.Type;

/** What `POST /admin/users/sync_sso` answers: the user it created or found. */
export const SyncSsoResponse = Schema.Struct({
  id: Schema.Int,
  username: Schema.String,
});
export type SyncSsoResponse = typeof SyncSsoResponse.Type;

/**
 * `POST /users.json` answers 200 whatever happened: `success` false carries
 * `message` and per-field `errors`; `user_id` is usually omitted.
 */
export const CreateUserResponse = Schema.Struct({
  success: Schema.Boolean,
  active: Schema.optional(Schema.Boolean),
  message: Schema.optional(Schema.NullOr(Schema.String)),
  errors: Schema.optional(
    Schema.Record({ key: Schema.String, value: Schema.Array(Schema.String) }),
  ),
  user_id: Schema.optional(Schema.NullOr(Schema.Int)),
});
export type CreateUserResponse = typeof CreateUserResponse.Type;

/**
 * The DiscourseConnect payload fields `sync_sso` reads. Absent keys leave
 * Discourse's value alone; `external_id` is the Moodle user id.
 */
export interface SsoAccount {
  readonly external_id: string;
  readonly email: string;
  readonly username: string;
  readonly name?: string;
  readonly bio?: string;
  readonly location?: string;
  readonly suppress_welcome_message: boolean;
}

/** `POST /users.json` as an admin: active and approved, no password. */
export interface NewLocalAccount {
  readonly username: string;
  readonly email: string;
  readonly name?: string;
}

/** `group` of `GET /groups/{name}.json`, and `basic_group` of its creation. */
export const DiscourseGroup = Schema.Struct({
  id: Schema.Int,
  name: Schema.String,
  automatic: Schema.optionalWith(Schema.Boolean, { default: () => false }),
});
export type DiscourseGroup = typeof DiscourseGroup.Type;

export const GroupResponse = Schema.Struct({ group: DiscourseGroup });
export const GroupCreatedResponse = Schema.Struct({
  basic_group: DiscourseGroup,
});

const GroupMember = Schema.Struct({ username: Schema.String });

/** One page of `GET /groups/{name}/members.json`. */
export const GroupMembersPage = Schema.Struct({
  members: Schema.Array(GroupMember),
  owners: Schema.optionalWith(Schema.Array(GroupMember), {
    default: () => [],
  }),
  meta: Schema.Struct({ total: Schema.Int }),
});

/** `PUT` and `DELETE /groups/{id}/members.json`. */
export const MembershipAnswer = Schema.Struct({
  usernames: Schema.optionalWith(Schema.Array(Schema.String), {
    default: () => [],
  }),
  skipped_usernames: Schema.optionalWith(Schema.Array(Schema.String), {
    default: () => [],
  }),
});

/**
 * `PUT /admin/users/{id}/suspend.json` and `unsuspend.json`: the suspension
 * as stored (`suspended_till` null after an unsuspension).
 */
export const SuspensionResponse = Schema.Struct({
  suspension: Schema.Struct({
    suspended_till: Schema.NullOr(Schema.String),
  }),
});
