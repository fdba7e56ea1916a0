// A faithful, strict double of Moodle's REST web services, as described in
// /work/shared/reference/moodle-api.md: HTTP 200 exceptions, PHP bracket
// parameters, LIKE searches, omitted-when-unset fields.
import {
  type Answer,
  applySharedFault,
  type Fault,
  FaultQueue,
  type FormMap,
  type FormValue,
  htmlResponse,
  type IncomingCall,
  jsonResponse,
  likePattern,
  parseBracketForm,
  type RecordedRequest,
  type RecordingOptions,
  startHttpDouble,
} from "./http.ts";

export type { Fault, RecordedRequest } from "./http.ts";

/** A cohort (cohort table and its members). */
export interface MoodleScenarioCohort {
  id: number;
  name: string;
  /** Default "": Moodle returns an unset idnumber as "", not omitted. */
  idnumber?: string;
  description?: string;
  /** 0 Moodle, 1 HTML (default), 2 plain, 4 Markdown. */
  descriptionformat?: number;
  visible?: boolean;
  /** Moodle user ids; deleted users are never members. */
  members: number[];
}

/** One user's enrolment in a course. */
export interface MoodleScenarioEnrolment {
  userid: number;
  /** Role shortnames in the course; default ["student"]. */
  roles?: string[];
  /** Default "active"; `onlyactive` leaves suspended enrolments out. */
  status?: "active" | "suspended";
}

export interface MoodleScenarioCourse {
  /** > 1: id 1 is the site (front page) course. */
  id: number;
  shortname: string;
  fullname?: string;
  idnumber?: string;
  categoryid?: number;
  /** Default true. A hidden course the token cannot enter is not listed. */
  visible?: boolean;
  /**
   * Default true. false: the token's user cannot enter the course context
   * (not enrolled, no capability): get_courses_by_field shows only its
   * public information, get_enrolled_users fails.
   */
  accessible?: boolean;
  enrolments: MoodleScenarioEnrolment[];
}

/**
 * Capabilities the functions check, each with the name Moodle's
 * nopermissions message shows.
 */
export const moodleCapabilities = {
  "moodle/cohort:view": "View site-wide cohorts",
  "moodle/course:viewparticipants": "View participants",
  "moodle/site:viewparticipants": "View participants",
  "moodle/course:enrolreview": "Review course enrolments",
} as const;
export type MoodleCapability = keyof typeof moodleCapabilities;

/** The functions a group sync needs in the token's service. */
export const groupSyncFunctions: ReadonlyArray<string> = [
  "core_cohort_get_cohorts",
  "core_cohort_get_cohort_members",
  "core_course_get_courses_by_field",
  "core_enrol_get_enrolled_users",
];

export interface MoodleScenario extends RecordingOptions {
  /** The only accepted `wstoken`. */
  token: string;
  /**
   * Raw records as Moodle would return them. Records may be malformed on
   * purpose: they are returned as they are, except that empty optional
   * fields are omitted (as Moodle does) and `deleted` ones are hidden.
   */
  users: Array<Record<string, unknown>>;
  /** false: every call answers HTTP 403 with an empty body. */
  webServicesEnabled?: boolean;
  /** Functions in the token's service; default the two user lookups. */
  allowedFunctions?: string[];
  /**
   * Moodle's `extendedusernamechars`: when off, PARAM_USERNAME strips
   * everything but `[-.@_a-z0-9]`, so a lookup of `ana garcia` fails with
   * invalidparameter. Default: on when a scenario username needs it.
   */
  extendedUsernameChars?: boolean;
  /** Fixed port; default an ephemeral one. */
  port?: number;
  siteName?: string;
  cohorts?: MoodleScenarioCohort[];
  courses?: MoodleScenarioCourse[];
  /**
   * Capabilities the token's user lacks (default none): the function that
   * checks one answers a `nopermissions` exception, as a token whose role
   * lost it does. A function missing from the service is `allowedFunctions`.
   */
  withoutCapabilities?: MoodleCapability[];
}

export interface FakeMoodle {
  /** http://127.0.0.1:PORT/webservice/rest/server.php */
  endpoint: string;
  /** http://127.0.0.1:PORT, Moodle's wwwroot. */
  wwwroot: string;
  token: string;
  /** Every request received, in order (unless `recordRequests: false`). */
  requests: RecordedRequest[];
  /** Faults are consumed in order: the next `count` matching requests get it. */
  inject(fault: Fault): void;
  /** Requests received, recorded or not. */
  requestCount(): number;
  /** Calls of one wsfunction that got past token and service checks. */
  functionCallCount(wsfunction: string): number;
  /** Changes the answer latency for requests from now on. */
  setLatency(ms: number): void;
  close(): Promise<void>;
}

export const defaultAllowedFunctions: ReadonlyArray<string> = [
  "core_user_get_users",
  "core_user_get_users_by_field",
];

/** Real Moodle functions the double knows (not all are implemented). */
const knownFunctions = new Set([
  "core_user_get_users",
  "core_user_get_users_by_field",
  "core_webservice_get_site_info",
  "core_enrol_get_enrolled_users",
  "core_user_update_users",
  "core_user_create_users",
  "core_user_delete_users",
  "core_course_get_courses",
  "core_course_get_courses_by_field",
  "core_cohort_get_cohorts",
  "core_cohort_get_cohort_members",
]);

/** Moodle's standard roles: id, shortname; their stored name is "". */
const standardRoles: ReadonlyArray<[number, string]> = [
  [1, "manager"],
  [2, "coursecreator"],
  [3, "editingteacher"],
  [4, "teacher"],
  [5, "student"],
  [6, "guest"],
  [7, "user"],
  [8, "frontpage"],
];

const restPath = "/webservice/rest/server.php";

/** A Moodle exception: answered with HTTP 200 in the requested format. */
class MoodleFailure {
  constructor(
    readonly exception: string,
    readonly errorcode: string,
    readonly message: string,
    readonly debuginfo?: string,
  ) {}
}

const invalidParameter = (debuginfo: string) =>
  new MoodleFailure(
    "invalid_parameter_exception",
    "invalidparameter",
    "Invalid parameter value detected",
    debuginfo,
  );

/** required_capability_exception, as require_capability throws it. */
const noPermission = (capability: MoodleCapability) =>
  new MoodleFailure(
    "required_capability_exception",
    "nopermissions",
    `Sorry, but you do not currently have permissions to do that (${
      moodleCapabilities[capability]
    }).`,
  );

const missingRecord = (table: string) =>
  new MoodleFailure(
    "dml_missing_record_exception",
    "invalidrecord",
    `Can't find data record in database table ${table}.`,
  );

const escapeXml = (text: string): string =>
  text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

const toXml = (value: unknown): string => {
  if (Array.isArray(value)) {
    return `<MULTIPLE>\n${value.map(toXml).join("")}</MULTIPLE>\n`;
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.entries(value as Record<string, unknown>)
      .map(([key, child]) =>
        `<KEY name="${escapeXml(key)}">${toXml(child)}</KEY>\n`
      )
      .join("");
    return `<SINGLE>\n${keys}</SINGLE>\n`;
  }
  if (value === null || value === undefined) return `<VALUE null="null"/>`;
  const scalar = typeof value === "boolean"
    ? (value ? "1" : "0")
    : String(value);
  return `<VALUE>${escapeXml(scalar)}</VALUE>`;
};

const answer = (format: "json" | "xml", result: unknown): Response => {
  if (format === "json") return jsonResponse(200, result);
  return new Response(
    `<?xml version="1.0" encoding="UTF-8" ?>\n<RESPONSE>\n${
      toXml(result)
    }</RESPONSE>\n`,
    {
      status: 200,
      headers: { "content-type": "application/xml; charset=utf-8" },
    },
  );
};

const answerFailure = (
  format: "json" | "xml",
  failure: MoodleFailure,
): Response => {
  if (format === "json") {
    return jsonResponse(200, {
      exception: failure.exception,
      errorcode: failure.errorcode,
      message: failure.message,
      ...(failure.debuginfo === undefined
        ? {}
        : { debuginfo: failure.debuginfo }),
    });
  }
  return new Response(
    `<?xml version="1.0" encoding="UTF-8" ?>\n<EXCEPTION class="${failure.exception}">\n` +
      `<ERRORCODE>${escapeXml(failure.errorcode)}</ERRORCODE>\n` +
      `<MESSAGE>${escapeXml(failure.message)}</MESSAGE>\n` +
      (failure.debuginfo === undefined
        ? ""
        : `<DEBUGINFO>${escapeXml(failure.debuginfo)}</DEBUGINFO>\n`) +
      `</EXCEPTION>\n`,
    {
      status: 200,
      headers: { "content-type": "application/xml; charset=utf-8" },
    },
  );
};

const emailPattern =
  /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,}$|^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@localhost$/;

const isDeleted = (record: Record<string, unknown>): boolean =>
  record.deleted === true || record.deleted === 1 || record.deleted === "1";

const numericId = (record: Record<string, unknown>): number => {
  const id = Number(record.id);
  return Number.isFinite(id) ? id : Number.POSITIVE_INFINITY;
};

const byId = (
  a: Record<string, unknown>,
  b: Record<string, unknown>,
): number => numericId(a) - numericId(b);

/** A record as Moodle emits it: unset optional fields are left out. */
const present = (
  record: Record<string, unknown>,
  drop: ReadonlyArray<string> = [],
): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) {
    if (key === "deleted" || drop.includes(key)) continue;
    if (
      key !== "id" && key !== "fullname" &&
      (value === undefined || value === "")
    ) {
      continue;
    }
    out[key] = value;
  }
  // descriptionformat only travels with a description.
  if (!("description" in out)) delete out.descriptionformat;
  return out;
};

const asString = (value: unknown): string | undefined =>
  typeof value === "string"
    ? value
    : typeof value === "number" || typeof value === "boolean"
    ? String(value)
    : undefined;

const describeBad = (value: FormValue | undefined): string =>
  value === undefined
    ? "null"
    : typeof value === "string"
    ? `'${value}'`
    : "array";

/** The bits of external_api::validate_parameters the functions need. */
const expectKeys = (
  params: FormMap,
  allowed: ReadonlyArray<string>,
  required: ReadonlyArray<string>,
  prefix = "",
): void => {
  const unexpected = [...params.keys()].filter((key) => !allowed.includes(key));
  if (unexpected.length > 0) {
    throw invalidParameter(
      `${prefix}Unexpected keys (${
        unexpected.join(", ")
      }) detected in parameter array.`,
    );
  }
  for (const key of required) {
    if (!params.has(key)) {
      throw invalidParameter(
        `${prefix}Missing required key in single structure: ${key}`,
      );
    }
  }
};

const expectList = (
  value: FormValue | undefined,
  name: string,
): FormValue[] => {
  if (!(value instanceof Map)) {
    throw invalidParameter(
      `${name} => Invalid parameter value detected (Only arrays accepted. The bad value is: ${
        describeBad(value)
      })`,
    );
  }
  return [...value.values()];
};

const expectScalar = (
  value: FormValue | undefined,
  name: string,
  type: "alpha" | "raw" | "int",
): string => {
  const bad = (why: string) =>
    invalidParameter(
      `${name} => Invalid parameter value detected (Invalid external api parameter: ${why}, the server was expecting "${type}" type)`,
    );
  if (typeof value !== "string") throw bad("the value is an array");
  if (type === "alpha" && /[^a-zA-Z]/.test(value)) {
    throw bad(`the value is "${value}"`);
  }
  if (type === "int" && !/^-?\d+$/.test(value.trim())) {
    throw bad(`the value is "${value}"`);
  }
  return value;
};

export const startFakeMoodle = async (
  scenario: MoodleScenario,
): Promise<FakeMoodle> => {
  const faults = new FaultQueue();
  const allowed = new Set(scenario.allowedFunctions ?? defaultAllowedFunctions);
  const records = scenario.users.map((user) => ({ ...user }));
  const extendedUsernameChars = scenario.extendedUsernameChars ??
    records.some((record) =>
      typeof record.username === "string" &&
      /[^-.@_a-z0-9]/.test(record.username.toLowerCase())
    );
  const functionCalls = new Map<string, number>();

  const cleanUsername = (value: string): string => {
    const lowered = value.trim().toLowerCase();
    return extendedUsernameChars
      ? lowered
      : lowered.replace(/ /g, "").replace(/[^-.@_a-z0-9]/g, "");
  };

  const getUsers = (params: FormMap) => {
    expectKeys(params, ["criteria"], ["criteria"]);
    const criteria = expectList(params.get("criteria"), "criteria").map(
      (criterion) => {
        if (!(criterion instanceof Map)) {
          throw invalidParameter(
            `criteria => Invalid parameter value detected (Only arrays accepted. The bad value is: ${
              describeBad(criterion)
            })`,
          );
        }
        expectKeys(
          criterion,
          ["key", "value"],
          ["key", "value"],
          "criteria => ",
        );
        return {
          key: expectScalar(criterion.get("key"), "key", "alpha"),
          value: expectScalar(criterion.get("value"), "value", "raw"),
        };
      },
    );
    const warnings: Array<Record<string, unknown>> = [];
    const used = new Set<string>();
    const conditions: Array<(record: Record<string, unknown>) => boolean> = [];
    const stringField = (record: Record<string, unknown>, field: string) =>
      asString(record[field]) ?? "";
    for (const { key, value } of criteria) {
      if (used.has(key)) {
        throw new MoodleFailure(
          "moodle_exception",
          "keyalreadyset",
          "error/keyalreadyset",
          `The key ${key} can only be sent once`,
        );
      }
      used.add(key);
      switch (key) {
        case "id": {
          const id = Number.parseInt(value, 10) || 0;
          conditions.push((record) => numericId(record) === id);
          break;
        }
        case "idnumber":
        case "auth":
          conditions.push((record) => stringField(record, key) === value);
          break;
        case "username": {
          const username = value.toLowerCase();
          conditions.push((record) => stringField(record, key) === username);
          break;
        }
        case "email":
        case "firstname":
        case "lastname": {
          const pattern = likePattern(value);
          conditions.push((record) => {
            const field = stringField(record, key);
            // Empty or hidden emails never match an email criterion.
            if (key === "email" && field === "") return false;
            return pattern.test(field);
          });
          break;
        }
        default:
          warnings.push({
            item: key,
            warningcode: "invalidfieldparameter",
            message:
              `The search key '${key}' is not supported, look at the web service documentation`,
          });
      }
    }
    const users = conditions.length === 0 ? [] : records
      .filter((record) => !isDeleted(record))
      .filter((record) => conditions.every((condition) => condition(record)))
      .sort(byId)
      .map((record) => present(record));
    return { users, warnings };
  };

  const getUsersByField = (params: FormMap) => {
    expectKeys(params, ["field", "values"], ["field", "values"]);
    const field = expectScalar(params.get("field"), "field", "alpha");
    const values = expectList(params.get("values"), "values").map((value) =>
      expectScalar(value, "values", "raw")
    );
    if (!["id", "idnumber", "username", "email"].includes(field)) {
      throw invalidParameter(
        `The search field '${field}' is not supported, look at the web service documentation`,
      );
    }
    const clean = (value: string): string => {
      switch (field) {
        case "id":
          return /^-?\d+$/.test(value)
            ? value
            : String(Number.parseInt(value, 10) || 0);
        case "username":
          return cleanUsername(value);
        case "email":
          return emailPattern.test(value) ? value : "";
        default:
          return value;
      }
    };
    const wanted = new Set<string>();
    for (const value of values) {
      const cleaned = clean(value);
      if (cleaned !== value) {
        throw invalidParameter(
          `The field '${field}' value is invalid: ${value}(cleaned value: ${cleaned})`,
        );
      }
      wanted.add(cleaned);
    }
    // Moodle applies no deleted filter when looking up by id.
    return records
      .filter((record) => field === "id" || !isDeleted(record))
      .filter((record) => {
        const own = field === "id"
          ? String(numericId(record))
          : asString(record[field]);
        return own !== undefined && wanted.has(own);
      })
      .sort(byId)
      .map((record) => present(record));
  };

  const getSiteInfo = (params: FormMap, origin: string) => {
    expectKeys(params, ["serviceshortnames"], []);
    return {
      sitename: scenario.siteName ?? "Campus Virtual (fake)",
      username: "wsuser",
      firstname: "Web",
      lastname: "Service",
      fullname: "Web Service",
      lang: "en",
      userid: 2,
      siteurl: origin,
      userpictureurl: `${origin}/theme/image.php/boost/core/1/u/f1`,
      functions: [...allowed].map((name) => ({ name, version: "2024100700" })),
      downloadfiles: 0,
      uploadfiles: 0,
      release: "4.5 (Build: 20241007)",
      version: "2024100700",
      mobilecssurl: "",
      usercanmanageownfiles: true,
      userquota: 0,
      usermaxuploadfilesize: 0,
      userhomepage: 1,
      siteid: 1,
      sitecalendartype: "gregorian",
      usercalendartype: "gregorian",
      userissiteadmin: false,
      theme: "boost",
    };
  };

  const cohorts = (scenario.cohorts ?? []).map((cohort) => ({
    ...cohort,
    members: [...cohort.members],
  }));
  const courses = (scenario.courses ?? []).map((course) => {
    if (course.id <= 1) {
      throw new Error(
        `scenario course "${course.shortname}": id must be > 1 (1 is the site)`,
      );
    }
    return { ...course, enrolments: [...course.enrolments] };
  });
  const lacking = new Set<string>(scenario.withoutCapabilities ?? []);
  const requireCapability = (capability: MoodleCapability): void => {
    if (lacking.has(capability)) throw noPermission(capability);
  };
  const roleIds = new Map(standardRoles.map(([id, name]) => [name, id]));
  const roleOf = (shortname: string) => {
    let roleid = roleIds.get(shortname);
    const standard = roleid !== undefined;
    if (roleid === undefined) {
      roleid = Math.max(...roleIds.values()) + 1;
      roleIds.set(shortname, roleid);
    }
    // Standard roles keep an empty stored name; only custom ones have one.
    return {
      roleid,
      name: standard ? "" : shortname,
      shortname,
      sortorder: roleid,
    };
  };
  const liveRecord = (id: number) =>
    records.find((record) => numericId(record) === id && !isDeleted(record));

  const intList = (value: FormValue | undefined, name: string): number[] =>
    expectList(value, name).map((item) =>
      Number(expectScalar(item, name, "int"))
    );

  const getCohorts = (params: FormMap) => {
    expectKeys(params, ["cohortids"], []);
    const ids = params.has("cohortids")
      ? intList(params.get("cohortids"), "cohortids")
      : [];
    // An empty list means every cohort; unknown ids are simply absent.
    const chosen = ids.length === 0
      ? cohorts
      : cohorts.filter((cohort) => ids.includes(cohort.id));
    return [...chosen].sort((a, b) => a.id - b.id).map((cohort) => {
      requireCapability("moodle/cohort:view");
      return {
        id: cohort.id,
        name: cohort.name,
        idnumber: cohort.idnumber ?? "",
        description: cohort.description ?? "",
        descriptionformat: cohort.descriptionformat ?? 1,
        visible: cohort.visible ?? true,
      };
    });
  };

  const lastFirst = (id: number): string => {
    const record = liveRecord(id);
    return `${asString(record?.lastname) ?? ""}\u0000${
      asString(record?.firstname) ?? ""
    }`;
  };

  const getCohortMembers = (params: FormMap) => {
    expectKeys(params, ["cohortids"], ["cohortids"]);
    return intList(params.get("cohortids"), "cohortids").map((id) => {
      const cohort = cohorts.find((candidate) => candidate.id === id);
      if (!cohort) throw missingRecord("cohort");
      requireCapability("moodle/cohort:view");
      // ORDER BY lastname ASC, firstname ASC, as the real query.
      const userids = cohort.members.filter((member) => liveRecord(member))
        .sort((a, b) => lastFirst(a).localeCompare(lastFirst(b)));
      return { cohortid: cohort.id, userids };
    });
  };

  const getCoursesByField = (params: FormMap) => {
    expectKeys(params, ["field", "value"], []);
    const field = params.has("field")
      ? expectScalar(params.get("field"), "field", "alpha")
      : "";
    const value = params.has("value")
      ? expectScalar(params.get("value"), "value", "raw")
      : "";
    const matches = (course: MoodleScenarioCourse): boolean => {
      switch (field) {
        case "":
          return true;
        case "id":
          return course.id === (Number.parseInt(value, 10) || 0);
        case "ids":
          return value.split(",").map((id) => Number.parseInt(id, 10))
            .includes(course.id);
        case "shortname":
          // PARAM_TEXT strips tags; the match itself is exact.
          return course.shortname === value.replace(/<[^>]*>/g, "");
        case "idnumber":
          return (course.idnumber ?? "") === value;
        case "category":
          return (course.categoryid ?? 1) === (Number.parseInt(value, 10) || 0);
        default:
          throw invalidParameter("Invalid field name");
      }
    };
    const listed = courses.filter(matches).sort((a, b) => a.id - b.id)
      .flatMap((course) => {
        const publicInfo = {
          id: course.id,
          fullname: course.fullname ?? course.shortname,
          displayname: course.fullname ?? course.shortname,
          shortname: course.shortname,
          categoryid: course.categoryid ?? 1,
          categoryname: "Category 1",
          sortorder: 10000 + course.id,
          summary: "",
          summaryformat: 1,
          summaryfiles: [],
          overviewfiles: [],
          contacts: [],
          enrollmentmethods: ["manual"],
        };
        if (course.accessible === false) {
          // Outside the course context only a visible course's public
          // information shows; a hidden one is left out without a word.
          return course.visible === false ? [] : [publicInfo];
        }
        return [{
          ...publicInfo,
          idnumber: course.idnumber ?? "",
          format: "topics",
          showgrades: 1,
          newsitems: 5,
          startdate: 1_725_000_000,
          enddate: 0,
          visible: course.visible === false ? 0 : 1,
          groupmode: 0,
          groupmodeforce: 0,
          defaultgroupingid: 0,
          lang: "",
        }];
      });
    return { courses: listed, warnings: [] };
  };

  const getEnrolledUsers = (params: FormMap) => {
    expectKeys(params, ["courseid", "options"], ["courseid"]);
    const courseid = Number(
      expectScalar(params.get("courseid"), "courseid", "int"),
    );
    const options = params.has("options")
      ? expectList(params.get("options"), "options").map((option) => {
        if (!(option instanceof Map)) {
          throw invalidParameter("options => Only arrays accepted.");
        }
        expectKeys(option, ["name", "value"], ["name", "value"], "options => ");
        return {
          name: expectScalar(option.get("name"), "name", "alpha"),
          value: expectScalar(option.get("value"), "value", "raw"),
        };
      })
      : [];
    const course = courses.find((candidate) => candidate.id === courseid);
    if (courseid !== 1 && !course) throw missingRecord("course");
    const option = (name: string) =>
      options.find((o) => o.name.toLowerCase() === name)?.value;
    if (option("withcapability") !== undefined) {
      throw new MoodleFailure(
        "moodle_exception",
        "notimplemented",
        "The fake Moodle does not implement the withcapability option",
      );
    }
    if (course?.accessible === false) {
      throw new MoodleFailure(
        "moodle_exception",
        "errorcoursecontextnotvalid",
        `You cannot execute functions in the course context (course id:${courseid}). The error message was: Course or activity not accessible. (Not enrolled)`,
      );
    }
    requireCapability(
      course
        ? "moodle/course:viewparticipants"
        : "moodle/site:viewparticipants",
    );
    // PHP's empty(): "" and "0" are off, anything else ("false" too) is on.
    const onlyActive = !["", "0", undefined].includes(option("onlyactive"));
    if (onlyActive) requireCapability("moodle/course:enrolreview");
    const from = Math.max(
      0,
      Number.parseInt(option("limitfrom") ?? "", 10) || 0,
    );
    const limit = Number.parseInt(option("limitnumber") ?? "", 10) || 0;
    const wantedFields = option("userfields")?.split(",").map((field) =>
      field.trim()
    );
    const page = <T>(all: T[]): T[] =>
      limit > 0 ? all.slice(from, from + limit) : all.slice(from);
    if (!course) {
      // The site course: every non-deleted user, without `suspended`.
      const all = records.filter((record) => !isDeleted(record)).sort(byId);
      return page(all).map((record) => present(record, ["suspended"]));
    }
    const enrolledIn = (userid: number) =>
      courses.filter((candidate) =>
        candidate.enrolments.some((enrolment) => enrolment.userid === userid)
      ).map((candidate) => ({
        id: candidate.id,
        fullname: candidate.fullname ?? candidate.shortname,
        shortname: candidate.shortname,
      }));
    const enrolled = course.enrolments
      .filter((enrolment) => !onlyActive || enrolment.status !== "suspended")
      .flatMap((enrolment) => {
        const record = liveRecord(enrolment.userid);
        // The guest account is never listed as enrolled.
        return record && enrolment.userid !== 1 ? [{ enrolment, record }] : [];
      })
      .sort((a, b) => byId(a.record, b.record));
    return page(enrolled).map(({ enrolment, record }) => {
      const details: Record<string, unknown> = {
        ...present(record, ["suspended"]),
        roles: (enrolment.roles ?? ["student"]).map(roleOf),
        groups: [],
        enrolledcourses: enrolledIn(enrolment.userid),
      };
      if (!wantedFields) return details;
      return Object.fromEntries(
        Object.entries(details).filter(([key]) =>
          key === "id" || wantedFields.includes(key)
        ),
      );
    });
  };

  const readParams = async (
    method: string,
    query: URLSearchParams,
    headers: Headers,
    body: string,
  ): Promise<FormMap> => {
    const fromQuery = parseBracketForm(query);
    if (method !== "POST") return fromQuery;
    const type = (headers.get("content-type") ?? "").toLowerCase();
    let fromBody: FormMap = new Map();
    if (type.startsWith("application/x-www-form-urlencoded")) {
      fromBody = parseBracketForm(new URLSearchParams(body));
    } else if (type.startsWith("multipart/form-data")) {
      try {
        const form = await new Response(body, {
          headers: { "content-type": type },
        })
          .formData();
        const pairs = new URLSearchParams();
        form.forEach((value, key) => {
          if (typeof value === "string") pairs.append(key, value);
        });
        fromBody = parseBracketForm(pairs);
      } catch {
        fromBody = new Map();
      }
    }
    // PHP's array_merge($_GET, $_POST): a body key replaces a query key.
    return new Map([...fromQuery, ...fromBody]);
  };

  let origin = "";
  const handle = async (call: IncomingCall): Promise<Answer> => {
    const fault = faults.take(call.path);
    if (fault) {
      if (fault.kind === "moodle-exception") {
        return answerFailure(
          "json",
          new MoodleFailure(
            "moodle_exception",
            fault.errorcode,
            fault.message ?? `error/${fault.errorcode}`,
          ),
        );
      }
      const shared = await applySharedFault(fault, {
        rateLimitJson: (seconds) =>
          jsonResponse(429, { error: "Too Many Requests" }, {
            "retry-after": String(seconds),
          }),
        rateLimitText: (seconds) =>
          new Response("Too Many Requests\n", {
            status: 429,
            headers: {
              "content-type": "text/plain; charset=utf-8",
              "retry-after": String(seconds),
            },
          }),
        truncatedJson: '{"users":[{"id":2,"username":"adm',
      }, call.signal);
      if (shared !== undefined) return shared;
    }
    if (scenario.webServicesEnabled === false) {
      return new Response(null, { status: 403 });
    }
    if (call.path !== restPath) {
      return htmlResponse(
        404,
        "Not Found",
        "The requested URL was not found on this server.",
      );
    }
    const params = await readParams(
      call.method,
      call.query,
      call.headers,
      call.body,
    );
    const format = params.get("moodlewsrestformat") === "json" ? "json" : "xml";
    const token = params.get("wstoken");
    const wsfunction = params.get("wsfunction");
    params.delete("wstoken");
    params.delete("wsfunction");
    params.delete("moodlewsrestformat");
    try {
      if (
        typeof token !== "string" || token === "" || token !== scenario.token
      ) {
        throw new MoodleFailure(
          "moodle_exception",
          "invalidtoken",
          "Invalid token - token not found",
        );
      }
      if (typeof wsfunction !== "string" || !knownFunctions.has(wsfunction)) {
        throw missingRecord("external_functions");
      }
      if (!allowed.has(wsfunction)) {
        throw new MoodleFailure(
          "webservice_access_exception",
          "accessexception",
          "Access control exception",
        );
      }
      functionCalls.set(wsfunction, (functionCalls.get(wsfunction) ?? 0) + 1);
      switch (wsfunction) {
        case "core_user_get_users":
          return answer(format, getUsers(params));
        case "core_user_get_users_by_field":
          return answer(format, getUsersByField(params));
        case "core_webservice_get_site_info":
          return answer(format, getSiteInfo(params, origin));
        case "core_enrol_get_enrolled_users":
          return answer(format, getEnrolledUsers(params));
        case "core_cohort_get_cohorts":
          return answer(format, getCohorts(params));
        case "core_cohort_get_cohort_members":
          return answer(format, getCohortMembers(params));
        case "core_course_get_courses_by_field":
          return answer(format, getCoursesByField(params));
        default:
          throw new MoodleFailure(
            "moodle_exception",
            "notimplemented",
            `The fake Moodle does not implement ${wsfunction}`,
          );
      }
    } catch (failure) {
      if (failure instanceof MoodleFailure) {
        return answerFailure(format, failure);
      }
      throw failure;
    }
  };

  const server = await startHttpDouble({
    port: scenario.port,
    recordBodies: scenario.recordBodies,
    recordRequests: scenario.recordRequests,
    latencyMs: scenario.latencyMs,
    handle,
  });
  origin = server.origin;

  return {
    endpoint: `${server.origin}${restPath}`,
    wwwroot: server.origin,
    token: scenario.token,
    requests: server.requests,
    inject: (fault) => faults.inject(fault),
    requestCount: server.requestCount,
    functionCallCount: (wsfunction) => functionCalls.get(wsfunction) ?? 0,
    setLatency: server.setLatency,
    close: server.close,
  };
};
