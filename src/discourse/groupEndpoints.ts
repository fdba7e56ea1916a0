/**
 * The group endpoints, built on the client's one `execute`: read a group and
 * its members, add and remove members, create a group.
 */
import { Effect, Option } from "effect";
import type { Scrub } from "../domain/secrets.ts";
import { jsonBody } from "./answers.ts";
import type { DiscourseError } from "./errors.ts";
import { answerLimits, type DiscourseHttp } from "./http.ts";
import {
  type DiscourseGroup,
  GroupCreatedResponse,
  GroupMembersPage,
  GroupResponse,
  MembershipAnswer,
} from "./schema.ts";

/** A group's members and owners, as the forum spells their usernames. */
export interface GroupMembership {
  readonly members: ReadonlyArray<string>;
  readonly owners: ReadonlyArray<string>;
}

/** Discourse's page size limit for group members. */
const membersPageSize = 1000;

/** Discourse's `visibility_level` for "group owners, members and moderators". */
const visibleToMembers = 2;

export interface GroupEndpoints {
  /** `GET /groups/{name}.json`; 404 is None. */
  readonly group: (
    name: string,
  ) => Effect.Effect<Option.Option<DiscourseGroup>, DiscourseError>;
  /**
   * Every member of a group, owners included, and its owners: `GET
   * /groups/{name}/members.json`, 1000 a page.
   */
  readonly groupMembers: (
    name: string,
  ) => Effect.Effect<GroupMembership, DiscourseError>;
  /**
   * `PUT /groups/{id}/members.json`, at most 1000 usernames. Discourse's
   * 422 for "every one is a member already" is `alreadyMembers`.
   */
  readonly addGroupMembers: (
    group: { readonly id: number; readonly name: string },
    usernames: ReadonlyArray<string>,
  ) => Effect.Effect<{ readonly alreadyMembers: boolean }, DiscourseError>;
  /**
   * `DELETE /groups/{id}/members.json`, at most 1000 usernames; the ones
   * that were not members are `skipped`.
   */
  readonly removeGroupMembers: (
    group: { readonly id: number; readonly name: string },
    usernames: ReadonlyArray<string>,
  ) => Effect.Effect<
    { readonly skipped: ReadonlyArray<string> },
    DiscourseError
  >;
  /** `POST /admin/groups.json`: a group visible to its members only. */
  readonly createGroup: (
    name: string,
  ) => Effect.Effect<DiscourseGroup, DiscourseError>;
}

export const groupEndpoints = (
  execute: DiscourseHttp["execute"],
  scrub: Scrub,
): GroupEndpoints => {
  const user = encodeURIComponent;
  const readGroup = jsonBody(GroupResponse, scrub);
  const readGroupCreated = jsonBody(GroupCreatedResponse, scrub);
  const readMembersPage = jsonBody(GroupMembersPage, scrub);
  const readMembership = jsonBody(MembershipAnswer, scrub);

  const groupMembers = (name: string) =>
    Effect.gen(function* () {
      const members: Array<string> = [];
      const owners = new Set<string>();
      for (let offset = 0;; offset += membersPageSize) {
        const page = yield* execute({
          what: `read the members of group "${name}"`,
          method: "GET",
          path: `/groups/${user(name)}/members.json`,
          maxBytes: answerLimits.listPage,
          query: {
            limit: String(membersPageSize),
            offset: String(offset),
            asc: "true",
          },
        }, readMembersPage);
        members.push(...page.members.map((member) => member.username));
        for (const owner of page.owners) owners.add(owner.username);
        if (
          page.members.length === 0 ||
          offset + membersPageSize >= page.meta.total
        ) {
          return { members, owners: [...owners] } satisfies GroupMembership;
        }
      }
    });

  return {
    group: (name) =>
      execute({
        what: `read group "${name}"`,
        method: "GET",
        path: `/groups/${user(name)}.json`,
      }, readGroup).pipe(
        Effect.map((body) => Option.some(body.group)),
        Effect.catchTag("DiscourseNotFound", () => Effect.succeedNone),
      ),
    groupMembers,
    addGroupMembers: (group, usernames) =>
      execute({
        what: `add ${usernames.length} members to group "${group.name}"`,
        method: "PUT",
        path: `/groups/${group.id}/members.json`,
        body: { usernames: usernames.join(",") },
      }, readMembership).pipe(
        Effect.as({ alreadyMembers: false }),
        Effect.catchIf(
          (error) =>
            error._tag === "DiscourseValidationError" &&
            error.errors.length > 0 &&
            error.errors.every((words) => /already (a )?members?/.test(words)),
          () => Effect.succeed({ alreadyMembers: true }),
        ),
      ),
    removeGroupMembers: (group, usernames) =>
      execute({
        what: `remove ${usernames.length} members from group "${group.name}"`,
        method: "DELETE",
        path: `/groups/${group.id}/members.json`,
        body: { usernames: usernames.join(",") },
      }, readMembership).pipe(
        Effect.map((answer) => ({ skipped: answer.skipped_usernames })),
      ),
    createGroup: (name) =>
      execute({
        what: `create group "${name}"`,
        method: "POST",
        path: "/admin/groups.json",
        body: { group: { name, visibility_level: visibleToMembers } },
      }, readGroupCreated).pipe(Effect.map((body) => body.basic_group)),
  };
};
