/**
 * The suspension endpoints, built on the client's one `execute`: suspend an
 * account without emailing its owner, and lift the suspension.
 */
import { Effect } from "effect";
import type { Scrub } from "../domain/secrets.ts";
import { jsonBody } from "./answers.ts";
import type { DiscourseError } from "./errors.ts";
import type { DiscourseHttp } from "./http.ts";
import { SuspensionResponse } from "./schema.ts";

/** An account the admin routes address by id; the name is for messages. */
export interface ForumAccountRef {
  readonly id: number;
  readonly username: string;
}

export interface SuspensionEndpoints {
  /**
   * `PUT /admin/users/{id}/suspend.json` until `until` (ISO date) with
   * `reason` and no message, so no email goes to the user. A 409 (already
   * suspended, also after a retry of a suspension that landed) is
   * `AlreadySuspended`.
   */
  readonly suspendUser: (
    account: ForumAccountRef,
    suspension: { readonly until: string; readonly reason: string },
  ) => Effect.Effect<"Suspended" | "AlreadySuspended", DiscourseError>;
  /** `PUT /admin/users/{id}/unsuspend.json`. */
  readonly unsuspendUser: (
    account: ForumAccountRef,
  ) => Effect.Effect<void, DiscourseError>;
}

export const suspensionEndpoints = (
  execute: DiscourseHttp["execute"],
  scrub: Scrub,
): SuspensionEndpoints => {
  const readSuspension = jsonBody(SuspensionResponse, scrub);
  return {
    suspendUser: (account, suspension) =>
      execute({
        what: `suspend user "${account.username}" (id ${account.id})`,
        method: "PUT",
        path: `/admin/users/${account.id}/suspend.json`,
        body: {
          suspend_until: suspension.until,
          reason: suspension.reason,
        },
      }, readSuspension).pipe(
        Effect.as("Suspended" as const),
        Effect.catchIf(
          (error) =>
            error._tag === "DiscourseValidationError" &&
            error.status === 409,
          () => Effect.succeed("AlreadySuspended" as const),
        ),
      ),
    unsuspendUser: (account) =>
      execute({
        what: `unsuspend user "${account.username}" (id ${account.id})`,
        method: "PUT",
        path: `/admin/users/${account.id}/unsuspend.json`,
      }, readSuspension).pipe(Effect.asVoid),
  };
};
