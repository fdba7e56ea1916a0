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
]);

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
    if (courseid !== 1) {
      throw new MoodleFailure(
        "dml_missing_record_exception",
        "invalidrecord",
        "Can't find data record in database table course.",
      );
    }
    const option = (name: string) =>
      Number.parseInt(
        options.find((o) => o.name.toLowerCase() === name)?.value ?? "",
        10,
      );
    const from = Math.max(0, option("limitfrom") || 0);
    const limit = option("limitnumber") || 0;
    const all = records.filter((record) => !isDeleted(record)).sort(byId);
    return (limit > 0 ? all.slice(from, from + limit) : all.slice(from)).map((
      record,
    ) => present(record, ["suspended"]));
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
        throw new MoodleFailure(
          "dml_missing_record_exception",
          "invalidrecord",
          "Can't find data record in database table external_functions.",
        );
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
    close: server.close,
  };
};
