/**
 * The words of every sync row: one pure function from a user's outcome to
 * its audit entry and the changes the console lists under it.
 */
import { Option } from "effect";
import type { AuditAction, AuditStatus } from "../audit/AuditLog.ts";
import { type Candidate, identity, type UserCandidate } from "./candidate.ts";
import { createdMessage } from "./create.ts";
import type { FieldChange, Plan } from "./diff.ts";
import { type Done, doneRow } from "./summary.ts";
import {
  describeSteps,
  foreignAccountMessage,
  type MatchStep,
} from "./match.ts";
import { removalNotes } from "./profile.ts";
import type { Creation, UserOutcome } from "./UserOutcome.ts";

const collisionMessage = (
  candidate: UserCandidate,
  sharing: ReadonlyArray<string>,
) => {
  const others = sharing.filter((name) => name !== candidate.username);
  const names = others.map((name) => `"${name}"`).join(", ");
  return `username collision: Moodle ${
    others.length === 1 ? "user" : "users"
  } ${names} also ${
    others.length === 1 ? "becomes" : "become"
  } "${candidate.normalized}" in Discourse. None of them is synced, so no profile gets another person's data: rename one in Moodle or exclude it`;
};

const fieldList = (changes: ReadonlyArray<FieldChange>) =>
  changes.map((c) => c.field).join(", ");

const messageWith = (text: string, plan: Plan, how = "") =>
  [text, ...plan.skipped.map((s) => `${s.field} skipped: ${s.reason}`), how]
    .filter((part) => part.length > 0).join("; ");

const notFound = (tried: ReadonlyArray<MatchStep>) =>
  `not in Discourse (no account has its ${describeSteps(tried)})`;

const made = (
  who: UserCandidate,
  { route, created, suppressWelcomeMessage }: Creation,
) => createdMessage(route, created, who.user.id, suppressWelcomeMessage);

export const rowOf = (outcome: UserOutcome): Done => {
  switch (outcome._tag) {
    case "Malformed":
      return simple(
        outcome.who,
        "ERROR",
        "ERROR",
        `Moodle sent a record that cannot be read: ${outcome.problem}`,
      );
    case "NoUsername":
      return simple(
        outcome.who,
        "ERROR",
        "ERROR",
        "Moodle hides this user's username from the token's user: give it the capability moodle/user:viewalldetails",
      );
    case "Excluded":
      return simple(outcome.who, "EXCLUDE", "EXCLUDED", outcome.reason);
    case "Collision":
      return simple(
        outcome.who,
        "ERROR",
        "ERROR",
        outcome.tried === undefined
          ? collisionMessage(outcome.who, outcome.others)
          : `${collisionMessage(outcome.who, outcome.others)}; ${
            notFound(outcome.tried)
          }`,
      );
    case "UpToDate":
      return withPlan(
        outcome.who,
        outcome.plan,
        "UPDATE",
        "EXISTS",
        messageWith("already up to date", outcome.plan, outcome.how),
      );
    case "TooLong":
      return withPlan(
        outcome.who,
        outcome.plan,
        "ERROR",
        "ERROR",
        `not sent: ${outcome.violations.join("; ")}; ${outcome.how}`,
      );
    case "ForeignAccount":
      return simple(
        outcome.who,
        "ERROR",
        "ERROR",
        foreignAccountMessage(
          outcome.by,
          outcome.account,
          outcome.externalId,
          outcome.who.user.id,
        ),
      );
    case "Planned":
      return withPlan(
        outcome.who,
        outcome.plan,
        "UPDATE",
        "DRY_RUN",
        messageWith(
          `would update ${fieldList(outcome.plan.changes)}`,
          outcome.plan,
          outcome.how,
        ),
      );
    case "Declined":
      return withPlan(
        outcome.who,
        outcome.plan,
        outcome.action,
        "SKIPPED",
        "skipped by the operator",
      );
    case "PartlyWritten":
      return withPlan(
        outcome.who,
        outcome.plan,
        "UPDATE",
        "ERROR",
        `${
          outcome.written.join(", ")
        } written, then the email change failed: ${outcome.error}; ${outcome.how}`,
      );
    case "VerifyFailed":
      return withPlan(
        outcome.who,
        outcome.plan,
        "UPDATE",
        "VERIFY_FAILED",
        `Discourse did not keep ${
          outcome.mismatches.map((m) =>
            `${m.field} (holds ${JSON.stringify(m.actual)})`
          ).join(", ")
        }: a site setting may override it${
          Option.match(outcome.emailRequested, {
            onNone: () => "",
            onSome: (email) => `; ${emailRequested(email)}`,
          })
        }; ${outcome.how}`,
      );
    case "Applied": {
      const profile = outcome.plan.changes.filter((c) => c.field !== "email");
      const done = [
        ...(profile.length > 0 ? [`updated ${fieldList(profile)}`] : []),
        ...Option.toArray(Option.map(outcome.emailRequested, emailRequested)),
      ].join("; ");
      return withPlan(
        outcome.who,
        outcome.plan,
        "UPDATE",
        "SUCCESS",
        messageWith(done, outcome.plan, outcome.how),
      );
    }
    case "Missing": {
      const howCreated = outcome.refusal === undefined
        ? undefined
        : `accounts are created at first SSO login; --create-missing would refuse this one: ${outcome.refusal}`;
      return outcome.apply
        ? simple(
          outcome.who,
          "CREATE",
          "SKIPPED",
          `${notFound(outcome.tried)}: not created (${
            howCreated ??
              "accounts are created at first SSO login, or by --create-missing"
          })`,
        )
        : simple(
          outcome.who,
          "CREATE",
          "DRY_RUN",
          `${notFound(outcome.tried)}: ${
            howCreated ??
              "would be created at first SSO login, or now by --apply --create-missing"
          }`,
        );
    }
    case "CreationPlanned":
      return withPlan(
        outcome.who,
        outcome.plan,
        "CREATE",
        "DRY_RUN",
        `${notFound(outcome.tried)}: would be created`,
      );
    case "CreationRefused":
      return simple(outcome.who, "ERROR", "ERROR", outcome.refusal);
    case "CreatePending":
      return withPlan(
        outcome.who,
        outcome.plan,
        "CREATE",
        "DRY_RUN",
        "would create",
      );
    case "Completing":
      return withPlan(
        outcome.who,
        outcome.plan,
        "UPDATE",
        "DRY_RUN",
        "completing",
      );
    case "Created":
      return withPlan(
        outcome.who,
        outcome.plan,
        "CREATE",
        "SUCCESS",
        messageWith(made(outcome.who, outcome.creation), outcome.rest),
      );
    case "CreatedNotKept":
      return withPlan(
        outcome.who,
        outcome.plan,
        "CREATE",
        "VERIFY_FAILED",
        `${made(outcome.who, outcome.creation)}, but Discourse did not keep ${
          outcome.mismatches.map((m) =>
            `${m.field} (holds ${JSON.stringify(m.before)})`
          ).join(", ")
        }: a site setting may override it`,
      );
    case "CreatedThenFailed":
      return simple(
        outcome.who,
        "ERROR",
        "ERROR",
        `${made(outcome.who, outcome.creation)}, then writing ${
          fieldList(outcome.rest.changes)
        } failed: ${outcome.error}`,
      );
    case "Failed":
      return simple(outcome.who, "ERROR", "ERROR", outcome.message);
    case "NotWritten":
      return simple(outcome.who, "UPDATE", "SKIPPED", outcome.message);
    case "Crashed":
      return simple(outcome.who, "ERROR", "EXCEPTION", outcome.message);
  }
};

const emailRequested = (email: string) =>
  `email change to ${email} requested: it waits for the user's confirmation`;

const noPlan: Plan = { changes: [], skipped: [] };

/** The row says which written values lost control characters Moodle held. */
const withRemovalNotes = (
  message: string,
  candidate: Candidate,
  plan: Plan,
): string => {
  if (candidate._tag !== "User" || plan.changes.length === 0) return message;
  const notes = removalNotes(
    candidate.desired,
    plan.changes.map((change) => change.field),
  );
  return [message, ...notes].filter((part) => part !== "").join("; ");
};

/** A row with no field changes: excluded, refused, missing, failed. */
const simple = (
  candidate: Candidate,
  action: AuditAction,
  status: AuditStatus,
  message: string,
): Done => withPlan(candidate, noPlan, action, status, message);

const withPlan = (
  candidate: Candidate,
  plan: Plan,
  action: AuditAction,
  status: AuditStatus,
  message: string,
): Done =>
  doneRow(
    identity(candidate),
    plan,
    action,
    status,
    withRemovalNotes(message, candidate, plan),
  );
