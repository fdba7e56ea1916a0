import type * as HttpClientError from "@effect/platform/HttpClientError";
import { Data, Duration, Either, type ParseResult, Schema } from "effect";
import type { Scrub } from "../domain/secrets.ts";
import { describeParseError } from "../parseProblems.ts";
import {
  describeBytes,
  describeRefusedRedirect,
  type GuardedFailure,
  type RedirectRefused,
  transportDetail,
} from "../http/guarded.ts";
import { MoodleException } from "./schema.ts";
import type { OversizedRecord } from "./streamUsers.ts";

/** Moodle answered with an exception (HTTP 200 and an `exception` key). */
export class MoodleApiError extends Data.TaggedError("MoodleApiError")<{
  readonly errorcode: string;
  readonly message: string;
}> {}

/** Moodle answered with an HTTP error status (403: web services disabled). */
export class MoodleHttpError extends Data.TaggedError("MoodleHttpError")<{
  readonly status: number;
  readonly message: string;
}> {}

/** Moodle could not be reached, or timed out. */
export class MoodleTransportError extends Data.TaggedError(
  "MoodleTransportError",
)<{ readonly message: string }> {}

/**
 * Moodle answered with a redirect this client does not follow (another
 * origin, or a POST turned into a GET): moodle.endpoint is not where the
 * web services answer. Nothing was sent to the other address.
 */
export class MoodleRedirected extends Data.TaggedError("MoodleRedirected")<{
  readonly message: string;
}> {}

/** An answer over the size limit: reading stopped there. */
export class MoodleAnswerTooLarge extends Data.TaggedError(
  "MoodleAnswerTooLarge",
)<{ readonly message: string }> {}

/**
 * One user record in the list passed the most one record may take: reading
 * stopped there, so no record is held without bound.
 */
export class MoodleRecordTooLarge extends Data.TaggedError(
  "MoodleRecordTooLarge",
)<{ readonly message: string }> {}

/** Moodle's answer was not the JSON this function returns. */
export class MoodleDecodeError extends Data.TaggedError("MoodleDecodeError")<{
  readonly message: string;
}> {}

export type MoodleError =
  | MoodleApiError
  | MoodleHttpError
  | MoodleTransportError
  | MoodleDecodeError
  | MoodleRedirected
  | MoodleAnswerTooLarge
  | MoodleRecordTooLarge;

/** A 5xx, a timeout or a broken connection: worth another try. */
export const isRetriable = (error: MoodleError): boolean =>
  error._tag === "MoodleTransportError" ||
  (error._tag === "MoodleHttpError" && error.status >= 500);

/** The capabilities each function checks, for the nopermissions advice. */
const capabilitiesOf = (wsfunction: string): string => {
  if (wsfunction.startsWith("core_cohort_")) return "moodle/cohort:view";
  if (wsfunction === "core_enrol_get_enrolled_users") {
    return "moodle/course:viewparticipants and moodle/course:enrolreview";
  }
  return "moodle/user:viewdetails, moodle/user:viewhiddendetails and moodle/course:useremail";
};

/** Where the operator must look, and what Moodle means by each errorcode. */
const moodleApiErrorMessage = (
  host: string,
  wsfunction: string,
  exception: {
    readonly errorcode: string;
    readonly message: string;
    readonly debuginfo?: string | null | undefined;
  },
): string => {
  const { errorcode, message } = exception;
  switch (errorcode) {
    case "invalidtoken":
      return `Moodle at ${host} rejected the token (invalidtoken): check moodle.token in the settings file or the MOODLE_TOKEN environment variable; Site administration > Server > Web services > Manage tokens lists the valid ones.`;
    case "accessexception":
      return `Moodle at ${host} refused ${wsfunction} for this token (accessexception): add ${wsfunction} to the token's external service in Site administration > Server > Web services > External services > Functions. If it is there, the token has expired or is restricted to other IP addresses (Manage tokens).`;
    case "invalidrecord":
      return `Moodle at ${host} does not know the web service function ${wsfunction} (invalidrecord): this Moodle version is probably too old or too new for it. Moodle said: ${message}`;
    case "nopermissions":
      return `The token's user on ${host} lacks a capability ${wsfunction} needs (nopermissions): give that user's role the capabilities it names, such as ${
        capabilitiesOf(wsfunction)
      }, or use a token of a user who has them. Moodle said: ${message}`;
    case "wsaccessusersuspended":
      return `The token's user on ${host} is suspended (wsaccessusersuspended): unsuspend that account, or create the token for an active user.`;
    case "wsaccessusernologin":
      return `The token's user on ${host} has the "No login" authentication method (wsaccessusernologin): give that account a real authentication method, or create the token for another user.`;
    case "sitemaintenance":
      return `Moodle at ${host} is in maintenance mode (sitemaintenance): run the sync again when maintenance is over.`;
    default: {
      const debug = exception.debuginfo
        ? ` Debug info: ${exception.debuginfo}`
        : "";
      return errorcode.startsWith("wsaccessuser")
        ? `The token's user on ${host} may not use web services (${errorcode}): ${message} Fix that account or create the token for another user.${debug}`
        : `Moodle at ${host} answered ${wsfunction} with an error: ${message} (errorcode ${errorcode}).${debug}`;
    }
  }
};

/**
 * The site as messages name it. `scrub` hides every secret and escapes
 * controls: Moodle echoes parts of requests in some messages, and its words
 * are shown on a terminal.
 */
export interface MoodleSite {
  readonly host: string;
  readonly endpoint: string;
  readonly scrub: Scrub;
}

const excerpt = (site: MoodleSite, body: string): string => {
  const flat = site.scrub(body.replace(/\s+/g, " ").trim());
  return flat.length > 80 ? `${flat.slice(0, 80)}...` : flat;
};

const transportError = (
  { host, scrub }: MoodleSite,
  wsfunction: string,
  error: HttpClientError.HttpClientError,
) => {
  const detail = scrub(transportDetail(error));
  return new MoodleTransportError({
    message:
      `Could not get ${wsfunction} from Moodle at ${host}: ${detail}. Check moodle.endpoint and that this machine can reach the site (network, proxy, firewall).`,
  });
};

/** An answer with a status other than 2xx. */
export const httpError = (
  { host }: MoodleSite,
  wsfunction: string,
  status: number,
  body: string,
) => {
  if (status === 403 && body.trim() === "") {
    return new MoodleHttpError({
      status,
      message:
        `Moodle at ${host} refused the web service call (HTTP 403 with an empty body): web services or the REST protocol are disabled. An administrator enables them in Site administration > Advanced features > Enable web services, and in Site administration > Server > Web services > Manage protocols > REST.`,
    });
  }
  const advice = status === 404
    ? `: moodle.endpoint is probably wrong; it should be the site's https://<site>/webservice/rest/server.php`
    : status >= 500
    ? ": the server failed; try again later, or ask the Moodle administrator to check its logs"
    : status === 401 || status === 403
    ? ": access was denied, by Moodle or a proxy in front of it"
    : "";
  return new MoodleHttpError({
    status,
    message:
      `Moodle at ${host} answered HTTP ${status} to ${wsfunction}${advice}.`,
  });
};

/** A 2xx body that is not JSON at all: `body` is all of it or its start. */
export const notJson = (
  site: MoodleSite,
  wsfunction: string,
  body: string,
  size: number = body.length,
) =>
  new MoodleDecodeError({
    message: /^\s*</.test(body)
      ? `Moodle at ${site.host} answered ${wsfunction} with an HTML page instead of JSON (often a login or error page): moodle.endpoint is probably wrong; it should end in /webservice/rest/server.php.`
      : `Moodle at ${site.host} answered ${wsfunction} with something that is not JSON (${size} bytes starting "${
        excerpt(site, body)
      }").`,
  });

/** JSON, but not of the shape this function returns. */
export const unexpectedShape = (
  site: MoodleSite,
  wsfunction: string,
  error: ParseResult.ParseError,
) =>
  new MoodleDecodeError({
    message: site.scrub(
      `Moodle at ${site.host} answered ${wsfunction} with JSON of an unexpected shape: ${
        describeParseError(error, "the answer", site.scrub)
      }`,
    ),
  });

/** Moodle's HTTP-200 exception reply, as the operator must read it. */
export const apiError = (
  { host, scrub }: MoodleSite,
  wsfunction: string,
  json: Readonly<Record<string, unknown>>,
) => {
  const exception = Either.getOrElse(
    Schema.decodeUnknownEither(MoodleException)(json),
    () => ({
      errorcode: typeof json.errorcode === "string"
        ? json.errorcode
        : "unknown",
      message: typeof json.message === "string" ? json.message : "(no message)",
      debuginfo: undefined,
    }),
  );
  return new MoodleApiError({
    errorcode: exception.errorcode,
    message: scrub(moodleApiErrorMessage(host, wsfunction, exception)),
  });
};

const redirected = (
  { endpoint, scrub }: MoodleSite,
  wsfunction: string,
  refused: RedirectRefused,
) => {
  const what = describeRefusedRedirect(
    refused,
    scrub(refused.to),
    "the token goes only to moodle.endpoint",
  );
  return new MoodleRedirected({
    message:
      `Moodle at ${endpoint} answered ${wsfunction} with ${what}. A misconfigured moodle.endpoint is the usual cause (http:// for an https:// site, www. or not, a wrong path): set it to the site's own https://<site>/webservice/rest/server.php.`,
  });
};

const ordinal = (n: number): string => {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13
    ? "th"
    : ["th", "st", "nd", "rd"][n % 10] ?? "th";
  return `${n.toLocaleString("en-US")}${suffix}`;
};

/** A user record too large to hold, named as far as its start shows. */
export const recordTooLarge = (
  site: MoodleSite,
  wsfunction: string,
  record: OversizedRecord,
  maxAnswerBytes: number,
) => {
  const position = `the ${ordinal(record.index + 1)} record, starting at byte ${
    record.offset.toLocaleString("en-US")
  } of the answer`;
  const who = record.id === undefined
    ? `a user record whose id could not be read (${position})`
    : `the record of Moodle user id ${record.id}${
      record.username === undefined ? "" : ` ("${site.scrub(record.username)}")`
    } (${position})`;
  const fix = record.id === undefined
    ? "check that moodle.endpoint points at Moodle itself, and ask the Moodle administrator which user holds such a profile"
    : `shorten that user's description in Moodle (Site administration > Users > Browse list of users, the user with id ${record.id}, Edit profile): a description usually grows that large with images or documents pasted into it`;
  return new MoodleRecordTooLarge({
    message:
      `Moodle at ${site.host} sent, for ${wsfunction}, ${who} larger than ${
        describeBytes(record.limitBytes)
      }; reading stopped there and nothing was synced. To fix it, ${fix}. If records that large are expected, raise moodle.maxResponseMegabytes (now ${
        Math.round(maxAnswerBytes / 1024 / 1024)
      }): one record may take 1/64 of it, and never less than 16 MB.`,
  });
};

/** A request that brought no usable answer: refused, too large, too slow, lost. */
export const guardFailure = (
  site: MoodleSite,
  wsfunction: string,
  failure: GuardedFailure,
) => {
  const { host } = site;
  switch (failure._tag) {
    case "RedirectRefused":
      return redirected(site, wsfunction, failure);
    case "AnswerTooLarge":
      return new MoodleAnswerTooLarge({
        message: `Moodle at ${host} answered more than ${
          describeBytes(failure.limitBytes)
        } for ${wsfunction}; reading stopped there. If the site really has that many users, raise moodle.maxResponseMegabytes (now ${
          Math.round(failure.limitBytes / 1024 / 1024)
        }); otherwise check that moodle.endpoint points at Moodle itself.`,
      });
    case "TimedOut":
      return new MoodleTransportError({
        message: `Moodle at ${host} did not answer ${wsfunction} within ${
          Duration.format(failure.after)
        }: the site may be overloaded or down.`,
      });
    default:
      return transportError(site, wsfunction, failure);
  }
};
