// A faithful, strict double of the Discourse HTTP API the sync uses, as
// described in /work/shared/reference/discourse-api.md: header auth, omitted
// blank fields, silently ignored fields, 200-with-failure user creation,
// empty-body email changes, a site-wide sliding-window admin limit and
// plain-text per-IP limits.
import {
  type Answer,
  applySharedFault,
  type Fault,
  FaultQueue,
  formToPlain,
  htmlResponse,
  type IncomingCall,
  jsonResponse,
  likePattern,
  parseBracketForm,
  type RecordedRequest,
  type RecordingOptions,
  retryAfterSeconds,
  SlidingWindow,
  startHttpDouble,
} from "./http.ts";

export type { Fault, RecordedRequest } from "./http.ts";

export interface DiscourseScenarioUser {
  id: number;
  username: string;
  name?: string;
  email: string;
  location?: string;
  bio_raw?: string;
  website?: string;
  /** DiscourseConnect record (Moodle id as a string). */
  external_id?: string;
  secondary_emails?: string[];
  unconfirmed_emails?: string[];
  active?: boolean;
  admin?: boolean;
  staged?: boolean;
  suspended_till?: string;
  moderator?: boolean;
  /** ISO time; default derived from the id, so id order is creation order. */
  created_at?: string;
  trust_level?: number;
}

export interface DiscourseSite {
  /** Default true. false: name omitted, can_edit_name false, PUT ignores name. */
  enableNames?: boolean;
  /** PUT ignores name, can_edit_name false. */
  authOverridesName?: boolean;
  ssoOverridesBio?: boolean;
  ssoOverridesLocation?: boolean;
  ssoOverridesEmail?: boolean;
  ssoOverridesWebsite?: boolean;
  /** Set: DiscourseConnect enabled (by-external and sync_sso work). */
  discourseConnectSecret?: string;
  minUsernameLength?: number;
  maxUsernameLength?: number;
  /** Default: Discourse's reserved_usernames setting. */
  reservedUsernames?: string[];
  /** Group names usernames must not clash with; default the automatic groups. */
  groupNames?: string[];
}

export interface DiscourseRateLimit {
  /** Site-wide admin API requests per window; default 60. */
  adminPerMinute?: number;
  /** Per IP per sixth of the window; default 50. */
  ipPer10Seconds?: number;
  /** Per IP per window; default 200. */
  ipPerMinute?: number;
  /** The length of "a minute"; default 60000, tests may shrink it. */
  windowMs?: number;
}

export interface DiscourseScenario extends RecordingOptions {
  apiKey: string;
  /** Must name an admin in `users`; added automatically if absent. */
  apiUser: string;
  users: DiscourseScenarioUser[];
  site?: DiscourseSite;
  rateLimit?: DiscourseRateLimit;
  /** Fixed port; default an ephemeral one. */
  port?: number;
  /** Monotonic milliseconds for the rate limiters; default performance.now. */
  clock?: () => number;
}

export interface StaffActionLogEntry {
  action: "check_email" | "show_emails";
  actingUser: string;
  targetUser?: string;
  context?: string;
  at: number;
}

export interface FakeDiscourse {
  /** http://127.0.0.1:PORT (no trailing slash). */
  url: string;
  apiKey: string;
  apiUser: string;
  /** Live state, mutated by writes. */
  users: Map<number, DiscourseScenarioUser>;
  /** Case-insensitive. */
  userByUsername(username: string): DiscourseScenarioUser | undefined;
  requests: RecordedRequest[];
  emailChangeRequests: Array<{ username: string; email: string }>;
  /** One entry per emails.json call and per show_emails admin list page. */
  staffActionLog: StaffActionLogEntry[];
  inject(fault: Fault): void;
  /** Another client spends n requests of the admin budget now. */
  foreignLoad(n: number): void;
  /** 429s answered by the admin limiter (not injected ones). */
  rateLimited429s(): number;
  /** 429s answered by the per-IP limiters. */
  ipRateLimited429s(): number;
  /** Admin requests inside the current window. */
  adminWindowUsed(): number;
  /** Profile views recorded for a user (reads without skip_track_visit). */
  profileViews(username: string): number;
  requestCount(): number;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Discourse's own rules, as pure functions

export const defaultReservedUsernames: ReadonlyArray<string> = [
  "admin",
  "moderator",
  "administrator",
  "mod",
  "sys",
  "system",
  "community",
  "info",
  "you",
  "name",
  "username",
  "user",
  "nickname",
  "discourse",
  "discourseorg",
  "discourseforum",
  "support",
  "all",
  "here",
];

export const defaultGroupNames: ReadonlyArray<string> = [
  "admins",
  "moderators",
  "staff",
  "everyone",
  "trust_level_0",
  "trust_level_1",
  "trust_level_2",
  "trust_level_3",
  "trust_level_4",
];

const confusingExtension =
  /\.(js|json|css|htm|html|xml|jpg|jpeg|png|gif|bmp|ico|tif|tiff|woff)$/i;

const usernameLimits = (site: DiscourseSite) => ({
  min: site.minUsernameLength ?? 3,
  max: Math.min(site.maxUsernameLength ?? 20, 60),
});

/** UsernameValidator: the first format problem, or undefined. */
export const usernameFormatError = (
  username: string,
  site: DiscourseSite = {},
): string | undefined => {
  const { min, max } = usernameLimits(site);
  const length = [...username].length;
  if (username.trim() === "") return "must be present";
  if (length < min) return `must be at least ${min} characters`;
  if (length > max) return `must be no more than ${max} characters`;
  if (/[^A-Za-z0-9_.-]/.test(username)) {
    return "must only include numbers, letters, dashes, dots, and underscores";
  }
  if (/^[^A-Za-z0-9_]/.test(username)) {
    return "must begin with a letter, a number or an underscore";
  }
  if (/[^A-Za-z0-9]$/.test(username)) {
    return "must end with a letter or a number";
  }
  if (/[-_.]{2,}/.test(username)) {
    return "must not contain a sequence of 2 or more special chars (.-_)";
  }
  if (confusingExtension.test(username)) {
    return "must not end with a confusing suffix like .json or .png etc.";
  }
  return undefined;
};

const matchesReserved = (username: string, reserved: ReadonlyArray<string>) =>
  reserved.some((pattern) =>
    likePattern(pattern.toLowerCase().replace(/\*/g, "%")).test(username)
  );

/** Discourse's UserNameSuggester.sanitize_username, then padding. */
export const suggestUsername = (
  input: string,
  site: DiscourseSite = {},
): string => {
  const { min, max } = usernameLimits(site);
  let name = input.normalize("NFKD").replace(/\p{M}/gu, "")
    .replace(/ß/g, "ss").replace(/æ/g, "ae").replace(/Æ/g, "AE")
    .replace(/ø/g, "o").replace(/Ø/g, "O").replace(/ł/g, "l")
    .replace(/Ł/g, "L").replace(/đ/g, "d").replace(/Đ/g, "D");
  name = name.replace(/[^A-Za-z0-9_.-]/g, "_");
  name = name.replace(/^[^A-Za-z0-9_]+/, "");
  name = name.replace(confusingExtension, "_");
  name = name.replace(/[^A-Za-z0-9]+$/, "");
  name = name.replace(/[-_.]{2,}/g, "_");
  // rightsize_username: truncate, fix the new ending, pad.
  name = name.slice(0, max).replace(/[^A-Za-z0-9]+$/, "");
  if (name === "") name = "user";
  while (name.length < min) name += "1";
  return name;
};

const emailFormat =
  /^[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/;

export const isValidEmail = (email: string): boolean => emailFormat.test(email);

/** Ruby's `blank?`: nil, empty or whitespace only. */
const isBlank = (value: string | undefined | null): boolean =>
  value === undefined || value === null || value.trim() === "";

const escapeHtml = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");

const cookInline = (text: string): string =>
  escapeHtml(text)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/__([^_]+)__/g, "<strong>$1</strong>")
    .replace(/\*([^*]+)\*/g, "<em>$1</em>")
    .replace(/(^|\W)_([^_]+)_(?=\W|$)/g, "$1<em>$2</em>")
    .replace(
      /\[([^\]]*)\]\(([^)\s]+)\)/g,
      (_all, label: string, href: string) => `<a href="${href}">${label}</a>`,
    );

/** A small Markdown cooker: enough for bio_cooked to look like Discourse's. */
export const cookMarkdown = (markdown: string): string => {
  const blocks = markdown.replace(/\r\n?/g, "\n").split(/\n{2,}/);
  return blocks.map((block) => block.trim()).filter((block) => block !== "")
    .map((block) => {
      const lines = block.split("\n");
      if (lines.every((line) => /^\s*[-*+]\s+/.test(line))) {
        return `<ul>\n${
          lines.map((line) =>
            `<li>${cookInline(line.replace(/^\s*[-*+]\s+/, ""))}</li>`
          )
            .join("\n")
        }\n</ul>`;
      }
      if (lines.every((line) => /^\s*\d+[.)]\s+/.test(line))) {
        return `<ol>\n${
          lines.map((line) =>
            `<li>${cookInline(line.replace(/^\s*\d+[.)]\s+/, ""))}</li>`
          )
            .join("\n")
        }\n</ol>`;
      }
      const heading = /^(#{1,6})\s+(.*)$/.exec(block);
      if (heading && lines.length === 1) {
        const level = heading[1].length;
        return `<h${level}>${cookInline(heading[2])}</h${level}>`;
      }
      return `<p>${lines.map(cookInline).join("<br>\n")}</p>`;
    }).join("\n");
};

const excerpt = (cooked: string, length = 350): string => {
  const text = cooked.replace(/<[^>]*>/g, "").replace(/\s+/g, " ").trim();
  return [...text].length > length
    ? `${[...text].slice(0, length).join("")}&hellip;`
    : text;
};

const formatWebsite = (website: string): string =>
  /^https?:\/\//.test(website) ? website : `http://${website}`;

const isValidWebsite = (website: string): boolean => {
  try {
    const url = new URL(website);
    return (url.protocol === "http:" || url.protocol === "https:") &&
      url.hostname.includes(".");
  } catch {
    return false;
  }
};

const charLength = (text: string): number => [...text].length;

// ---------------------------------------------------------------------------
// Error bodies, exactly as Discourse writes them

const notFoundBody = {
  errors: ["The requested URL or resource could not be found."],
  error_type: "not_found",
};
const invalidCredentialsBody = {
  errors: [
    "You do not have permission to view the requested resource. The API username or key is invalid.",
  ],
  error_type: "invalid_access",
};
const notPermittedBody = {
  errors: ["You are not permitted to view the requested resource."],
  error_type: "invalid_access",
};
const missingParamBody = (name: string) => ({
  errors: [`param is missing or the value is empty: ${name}`],
});
const invalidParamBody = (name: string) => ({
  errors: [`You supplied invalid parameters to the request: ${name}`],
  error_type: "invalid_parameters",
});

export const adminRateLimitBody = (waitSeconds: number) => ({
  errors: [
    `You’ve performed this action too many times. Please wait ${waitSeconds} seconds before trying again.`,
  ],
  error_type: "rate_limit",
  extras: { wait_seconds: waitSeconds, time_left: `${waitSeconds} seconds` },
});

const adminRateLimitHeaders = (waitSeconds: number) => ({
  "retry-after": String(waitSeconds),
  "discourse-rate-limit-error-code": "admin_api_key_rate_limit",
});

const ipRateLimitResponse = (
  waitSeconds: number,
  code: "ip_10_secs_limit" | "ip_60_secs_limit",
): Response =>
  new Response(
    `Slow down, too many requests from this IP address.\nPlease retry again in ${waitSeconds} seconds.\nError code: ${code}.\n`,
    {
      status: 429,
      headers: {
        "content-type": "text/plain; charset=utf-8",
        "retry-after": String(waitSeconds),
        "discourse-rate-limit-error-code": code,
      },
    },
  );

const htmlTitles: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  404: "Oops! That page doesn’t exist or is private.",
  422: "Unprocessable Entity",
  429: "Too Many Requests",
};

// ---------------------------------------------------------------------------
// Users, indexed by lower-case username

class UserTable extends Map<number, DiscourseScenarioUser> {
  #byUsername = new Map<string, number>();
  #version = 0;

  override set(id: number, user: DiscourseScenarioUser): this {
    const previous = super.get(id);
    if (previous) this.#byUsername.delete(previous.username.toLowerCase());
    super.set(id, user);
    this.#byUsername.set(user.username.toLowerCase(), id);
    this.#version++;
    return this;
  }

  override delete(id: number): boolean {
    const previous = super.get(id);
    if (previous) this.#byUsername.delete(previous.username.toLowerCase());
    this.#version++;
    return super.delete(id);
  }

  override clear(): void {
    this.#byUsername.clear();
    this.#version++;
    super.clear();
  }

  get version(): number {
    return this.#version;
  }

  byUsername(username: string): DiscourseScenarioUser | undefined {
    const lower = username.toLowerCase();
    const id = this.#byUsername.get(lower);
    const hit = id === undefined ? undefined : super.get(id);
    if (hit && hit.username.toLowerCase() === lower) return hit;
    // Tests may rename a user in place: fall back to a scan.
    for (const user of this.values()) {
      if (user.username.toLowerCase() === lower) return user;
    }
    return undefined;
  }

  nextId(): number {
    let max = 0;
    for (const id of this.keys()) if (id > max) max = id;
    return max + 1;
  }
}

const createdAt = (user: DiscourseScenarioUser): string =>
  user.created_at ??
    new Date(Date.UTC(2021, 0, 1) + Math.max(0, user.id) * 3_600_000)
      .toISOString();

const isSuspended = (user: DiscourseScenarioUser): boolean =>
  user.suspended_till !== undefined &&
  Date.parse(user.suspended_till) > Date.now();

const isStaff = (user: DiscourseScenarioUser): boolean =>
  user.admin === true || user.moderator === true;

const canEdit = (
  viewer: DiscourseScenarioUser,
  target: DiscourseScenarioUser,
): boolean =>
  viewer.id === target.id || viewer.admin === true ||
  (viewer.moderator === true && target.admin !== true);

const emailsOf = (user: DiscourseScenarioUser): string[] => [
  user.email.toLowerCase(),
  ...(user.secondary_emails ?? []).map((email) => email.toLowerCase()),
];

const avatarTemplate = (user: DiscourseScenarioUser): string =>
  `/letter_avatar_proxy/v4/letter/${
    (user.username[0] ?? "u").toLowerCase()
  }/8c91f0/{size}.png`;

// ---------------------------------------------------------------------------

class Failure {
  constructor(readonly status: number, readonly body: unknown) {}
}

type Params = Record<string, unknown>;

/** A scalar parameter: undefined when absent, "" for an explicit null. */
const scalarParam = (params: Params, name: string): string | undefined => {
  if (!(name in params)) return undefined;
  const value = params[name];
  if (value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") {
    return String(value);
  }
  throw new Failure(400, invalidParamBody(name));
};

const requiredParam = (params: Params, name: string): string => {
  const value = scalarParam(params, name);
  if (value === undefined || value.trim() === "") {
    throw new Failure(400, missingParamBody(name));
  }
  return value;
};

const truthyParam = (params: Params, name: string): boolean => {
  const value = params[name];
  return value === true || value === "true" || value === "1" || value === 1;
};

const hex = (bytes: ArrayBuffer): string =>
  [...new Uint8Array(bytes)].map((byte) => byte.toString(16).padStart(2, "0"))
    .join("");

/** The lowercase hex HMAC-SHA256 DiscourseConnect signs payloads with. */
export const signDiscourseConnect = async (
  payload: string,
  secret: string,
): Promise<string> => {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return hex(
    await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(payload)),
  );
};

const decodeBase64 = (text: string): string => {
  const binary = atob(text.replace(/\s+/g, ""));
  return new TextDecoder().decode(
    Uint8Array.from(binary, (char) => char.charCodeAt(0)),
  );
};

type Route =
  | { kind: "showUser"; username: string }
  | { kind: "byExternal"; externalId: string }
  | { kind: "updateUser"; username: string }
  | { kind: "emails"; username: string }
  | { kind: "changeEmail"; username: string }
  | { kind: "adminList"; flag: string }
  | { kind: "adminUser"; id: number }
  | { kind: "cards" }
  | { kind: "createUser" }
  | { kind: "syncSso" }
  | { kind: "userPage" };

const decodeSegment = (segment: string): string | undefined => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
};

const resolveRoute = (method: string, path: string): Route | undefined => {
  const json = path.endsWith(".json");
  const bare = json ? path.slice(0, -".json".length) : path;
  const segments = bare.split("/").slice(1).map(decodeSegment);
  if (segments.some((segment) => segment === undefined || segment === "")) {
    return undefined;
  }
  const parts = segments as string[];
  const [first, second, third, fourth] = parts;
  if (!json) {
    if (method === "POST" && path === "/admin/users/sync_sso") {
      return { kind: "syncSso" };
    }
    if (method === "GET" && first === "u" && parts.length >= 2) {
      return { kind: "userPage" };
    }
    return undefined;
  }
  if (
    first === "u" && second === "by-external" && parts.length === 3 &&
    method === "GET"
  ) {
    return { kind: "byExternal", externalId: third };
  }
  if (first === "u" && parts.length === 2) {
    if (method === "GET") return { kind: "showUser", username: second };
    if (method === "PUT") return { kind: "updateUser", username: second };
  }
  if (
    first === "u" && parts.length === 3 && third === "emails" &&
    method === "GET"
  ) {
    return { kind: "emails", username: second };
  }
  if (
    first === "u" && parts.length === 4 && third === "preferences" &&
    fourth === "email" &&
    method === "PUT"
  ) {
    return { kind: "changeEmail", username: second };
  }
  if (
    first === "admin" && second === "users" && third === "list" &&
    parts.length === 4 &&
    method === "GET"
  ) {
    return { kind: "adminList", flag: fourth };
  }
  if (
    first === "admin" && second === "users" && parts.length === 3 &&
    /^\d+$/.test(third) && method === "GET"
  ) {
    return { kind: "adminUser", id: Number(third) };
  }
  if (first === "user-cards" && parts.length === 1 && method === "GET") {
    return { kind: "cards" };
  }
  if (first === "users" && parts.length === 1 && method === "POST") {
    return { kind: "createUser" };
  }
  if (path === "/admin/users/sync_sso.json" && method === "POST") {
    return { kind: "syncSso" };
  }
  return undefined;
};

const readParams = async (call: IncomingCall): Promise<Params> => {
  const fromQuery = formToPlain(parseBracketForm(call.query)) as Params;
  if (call.method === "GET" || call.body === "") return fromQuery;
  const type = (call.headers.get("content-type") ?? "").toLowerCase();
  let fromBody: Params = {};
  if (type.startsWith("application/json")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(call.body);
    } catch {
      throw new Failure(400, {
        errors: ["The request body could not be parsed as JSON."],
        error_type: "invalid_parameters",
      });
    }
    // Rails keeps a non-object JSON body under `_json`.
    fromBody =
      parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
        ? parsed as Params
        : { _json: parsed };
  } else if (type.startsWith("application/x-www-form-urlencoded")) {
    fromBody = formToPlain(
      parseBracketForm(new URLSearchParams(call.body)),
    ) as Params;
  } else if (type.startsWith("multipart/form-data")) {
    const pairs = new URLSearchParams();
    try {
      const form = await new Response(call.body, {
        headers: { "content-type": type },
      })
        .formData();
      form.forEach((value, key) => {
        if (typeof value === "string") pairs.append(key, value);
      });
    } catch {
      throw new Failure(400, {
        errors: ["The multipart body could not be parsed."],
      });
    }
    fromBody = formToPlain(parseBracketForm(pairs)) as Params;
  }
  return { ...fromQuery, ...fromBody };
};

export const startFakeDiscourse = async (
  scenario: DiscourseScenario,
): Promise<FakeDiscourse> => {
  const site: DiscourseSite = scenario.site ?? {};
  const namesEnabled = site.enableNames !== false;
  const canChangeName = namesEnabled && site.authOverridesName !== true;
  const connectEnabled = site.discourseConnectSecret !== undefined;
  const reserved = site.reservedUsernames ?? defaultReservedUsernames;
  const groupNames = (site.groupNames ?? defaultGroupNames).map((g) =>
    g.toLowerCase()
  );
  const clock = scenario.clock ?? (() => performance.now());

  const windowMs = scenario.rateLimit?.windowMs ?? 60_000;
  const adminWindow = new SlidingWindow(
    scenario.rateLimit?.adminPerMinute ?? 60,
    windowMs,
  );
  const ipPer10 = scenario.rateLimit?.ipPer10Seconds ?? 50;
  const ipPer60 = scenario.rateLimit?.ipPerMinute ?? 200;
  const ipWindows = new Map<
    string,
    { ten: SlidingWindow; sixty: SlidingWindow }
  >();
  const emailChangeWindows = new Map<
    number,
    { minute: SlidingWindow; hour: SlidingWindow }
  >();

  const users = new UserTable();
  for (const user of scenario.users) users.set(user.id, structuredClone(user));
  if (!users.byUsername(scenario.apiUser)) {
    const id = scenario.apiUser.toLowerCase() === "system" && !users.has(-1)
      ? -1
      : users.nextId();
    users.set(id, {
      id,
      username: scenario.apiUser,
      name: scenario.apiUser,
      email: `no_email_${scenario.apiUser.toLowerCase()}@forum.invalid`,
      admin: true,
      active: true,
    });
  }

  const faults = new FaultQueue();
  const emailChangeRequests: Array<{ username: string; email: string }> = [];
  const staffActionLog: StaffActionLogEntry[] = [];
  const profileViews = new Map<number, number>();
  let admin429s = 0;
  let ip429s = 0;
  let sortedCache:
    | { version: number; users: ReadonlyArray<DiscourseScenarioUser> }
    | undefined;

  const ownerOfEmail = (email: string): DiscourseScenarioUser | undefined => {
    const lower = email.toLowerCase();
    for (const user of users.values()) {
      if (emailsOf(user).includes(lower)) return user;
    }
    return undefined;
  };

  const usernameTaken = (username: string): boolean =>
    users.byUsername(username) !== undefined ||
    groupNames.includes(username.toLowerCase());

  const uniqueUsername = (wanted: string): string => {
    const base = suggestUsername(wanted, site);
    if (
      !usernameTaken(base) && !matchesReserved(base.toLowerCase(), reserved)
    ) return base;
    const { max } = usernameLimits(site);
    for (let suffix = 1;; suffix++) {
      const tail = String(suffix);
      const candidate = `${base.slice(0, max - tail.length)}${tail}`;
      if (!usernameTaken(candidate)) return candidate;
    }
  };

  /** `fetch_user_from_params`: inactive accounts only for staff and self. */
  const visibleUser = (
    username: string,
    viewer: DiscourseScenarioUser,
  ): DiscourseScenarioUser => {
    const user = users.byUsername(username);
    if (!user) throw new Failure(404, notFoundBody);
    if (user.active === false && !isStaff(viewer) && viewer.id !== user.id) {
      throw new Failure(404, notFoundBody);
    }
    return user;
  };

  const serializeUser = (
    user: DiscourseScenarioUser,
    viewer: DiscourseScenarioUser,
  ): Record<string, unknown> => {
    const editable = canEdit(viewer, user);
    const out: Record<string, unknown> = {
      id: user.id,
      username: user.username,
      avatar_template: avatarTemplate(user),
    };
    if (namesEnabled && !isBlank(user.name)) out.name = user.name;
    if (!isBlank(user.location)) out.location = user.location;
    if (!isBlank(user.website)) {
      out.website = user.website;
      try {
        out.website_name = new URL(user.website!).hostname;
      } catch {
        out.website_name = user.website;
      }
    }
    if (!isBlank(user.bio_raw)) {
      const cooked = cookMarkdown(user.bio_raw!);
      if (editable) out.bio_raw = user.bio_raw;
      out.bio_cooked = cooked;
      out.bio_excerpt = excerpt(cooked);
    }
    Object.assign(out, {
      title: null,
      created_at: createdAt(user),
      trust_level: user.trust_level ?? 1,
      moderator: user.moderator === true,
      admin: user.admin === true,
      user_fields: {},
      can_edit: editable,
      can_edit_username: editable,
      can_edit_email: editable && site.ssoOverridesEmail !== true,
      can_edit_name: editable && canChangeName,
      can_change_bio: editable && site.ssoOverridesBio !== true,
      can_change_location: editable && site.ssoOverridesLocation !== true,
      can_change_website: editable && site.ssoOverridesWebsite !== true,
    });
    if (isSuspended(user)) out.suspended_till = user.suspended_till;
    return out;
  };

  const serializeAdminRow = (
    user: DiscourseScenarioUser,
    withEmails: boolean,
  ): Record<string, unknown> => {
    const out: Record<string, unknown> = {
      id: user.id,
      username: user.username,
    };
    if (namesEnabled) out.name = isBlank(user.name) ? null : user.name;
    out.avatar_template = avatarTemplate(user);
    if (withEmails) {
      out.email = user.email;
      out.secondary_emails = [...(user.secondary_emails ?? [])];
    }
    Object.assign(out, {
      active: user.active !== false,
      admin: user.admin === true,
      moderator: user.moderator === true,
      staged: user.staged === true,
      trust_level: user.trust_level ?? 1,
      created_at: createdAt(user),
      last_seen_at: null,
      last_emailed_at: null,
      silenced_till: null,
      post_count: 0,
      topics_entered: 0,
      time_read: 0,
      days_visited: 0,
    });
    if (isSuspended(user)) {
      out.suspended_at = createdAt(user);
      out.suspended_till = user.suspended_till;
    }
    return out;
  };

  const createdOrder = (): ReadonlyArray<DiscourseScenarioUser> => {
    if (sortedCache?.version !== users.version) {
      const ordered = [...users.values()].filter((user) => user.id > 0)
        .sort((a, b) => {
          const byTime = createdAt(a).localeCompare(createdAt(b));
          return byTime !== 0 ? byTime : a.id - b.id;
        });
      sortedCache = { version: users.version, users: ordered };
    }
    return sortedCache.users;
  };

  // -------------------------------------------------------------------------
  // Route handlers; each returns a Response or throws a Failure.

  const showUser = (
    user: DiscourseScenarioUser,
    viewer: DiscourseScenarioUser,
    query: URLSearchParams,
  ): Response => {
    // Rails tests `!params[:skip_track_visit]`: any value skips the view.
    if (!query.has("skip_track_visit") && user.id !== viewer.id) {
      profileViews.set(user.id, (profileViews.get(user.id) ?? 0) + 1);
    }
    return jsonResponse(200, {
      user_badges: [],
      user: serializeUser(user, viewer),
    });
  };

  const updateUser = (
    username: string,
    viewer: DiscourseScenarioUser,
    params: Params,
  ): Response => {
    const user = visibleUser(username, viewer);
    if (!canEdit(viewer, user)) throw new Failure(403, notPermittedBody);
    // Only top-level fields count: a `user` wrapper is simply not read.
    const name = canChangeName ? scalarParam(params, "name") : undefined;
    const location = site.ssoOverridesLocation
      ? undefined
      : scalarParam(params, "location");
    const bio = site.ssoOverridesBio
      ? undefined
      : scalarParam(params, "bio_raw");
    const rawWebsite = site.ssoOverridesWebsite
      ? undefined
      : scalarParam(params, "website");
    const website = rawWebsite === undefined
      ? undefined
      : isBlank(rawWebsite)
      ? ""
      : formatWebsite(rawWebsite);
    const errors: string[] = [];
    if (name !== undefined && charLength(name) > 255) {
      errors.push("Name is too long (maximum is 255 characters)");
    }
    if (location !== undefined && charLength(location) > 3000) {
      errors.push("Location is too long (maximum is 3000 characters)");
    }
    if (bio !== undefined && charLength(bio) > 3000) {
      errors.push("Bio raw is too long (maximum is 3000 characters)");
    }
    if (website !== undefined && website !== "") {
      if (charLength(website) > 3000) {
        errors.push("Website is too long (maximum is 3000 characters)");
      } else if (!isValidWebsite(website)) errors.push("Website is invalid");
    }
    if (errors.length > 0) throw new Failure(422, { errors });
    if (name !== undefined) user.name = name;
    if (location !== undefined) user.location = location;
    if (bio !== undefined) user.bio_raw = bio;
    if (website !== undefined) user.website = website;
    return jsonResponse(200, {
      success: "OK",
      user: serializeUser(user, viewer),
    });
  };

  const emails = (
    username: string,
    viewer: DiscourseScenarioUser,
  ): Response => {
    const user = users.byUsername(username);
    if (!user) throw new Failure(404, notFoundBody);
    if (user.id !== viewer.id) {
      if (viewer.admin !== true) throw new Failure(403, { failed: "FAILED" });
      staffActionLog.push({
        action: "check_email",
        actingUser: viewer.username,
        targetUser: user.username,
        at: Date.now(),
      });
    }
    return jsonResponse(200, {
      email: user.email,
      secondary_emails: [...(user.secondary_emails ?? [])],
      unconfirmed_emails: [...(user.unconfirmed_emails ?? [])],
      associated_accounts: [],
    });
  };

  const changeEmail = (
    username: string,
    viewer: DiscourseScenarioUser,
    params: Params,
  ): Response => {
    const wanted = requiredParam(params, "email");
    const user = visibleUser(username, viewer);
    let windows = emailChangeWindows.get(user.id);
    if (!windows) {
      windows = {
        minute: new SlidingWindow(3, windowMs),
        hour: new SlidingWindow(6, windowMs * 60),
      };
      emailChangeWindows.set(user.id, windows);
    }
    const now = clock();
    if (windows.hour.waitMs(now) > 0 || windows.minute.waitMs(now) > 0) {
      throw new Failure(422, {
        errors: [
          "You’ve performed this action too many times, try again later.",
        ],
      });
    }
    windows.hour.tryAcquire(now);
    windows.minute.tryAcquire(now);
    if (!canEdit(viewer, user) || site.ssoOverridesEmail === true) {
      throw new Failure(403, notPermittedBody);
    }
    const email = wanted.trim().toLowerCase();
    if (!isValidEmail(email)) {
      throw new Failure(422, { errors: ["Email is invalid"] });
    }
    // hide_email_address_taken: a taken address succeeds and does nothing.
    if (!ownerOfEmail(email)) {
      const pending = user.unconfirmed_emails ?? [];
      if (!pending.includes(email)) {
        user.unconfirmed_emails = [...pending, email];
      }
      emailChangeRequests.push({ username: user.username, email });
    }
    return new Response(null, { status: 200 });
  };

  const adminList = (
    flag: string,
    viewer: DiscourseScenarioUser,
    path: string,
    query: URLSearchParams,
  ): Response => {
    const withEmails = query.get("show_emails") === "true" &&
      viewer.admin === true;
    // The cached creation order is shared: filter and sort copies only.
    let rows: ReadonlyArray<DiscourseScenarioUser> = createdOrder();
    switch (flag) {
      case "staff":
        rows = rows.filter(isStaff);
        break;
      case "admins":
        rows = rows.filter((user) => user.admin === true);
        break;
      case "moderators":
        rows = rows.filter((user) => user.moderator === true);
        break;
      case "suspended":
        rows = rows.filter(isSuspended);
        break;
      case "staged":
        rows = rows.filter((user) => user.staged === true);
        break;
    }
    const email = query.get("email");
    const filter = query.get("filter")?.trim();
    if (email !== null && email !== "") {
      rows = rows.filter((user) =>
        user.email.toLowerCase() === email.toLowerCase()
      );
    } else if (filter) {
      const pattern = likePattern(`%${filter}%`);
      rows = rows.filter((user) =>
        pattern.test(user.username.toLowerCase()) ||
        pattern.test(user.email.toLowerCase())
      );
    }
    const order = query.get("order");
    const ascending = query.get("asc") === "true";
    if (order === "username") {
      rows = [...rows].sort((a, b) =>
        a.username.toLowerCase().localeCompare(b.username.toLowerCase())
      );
      if (!ascending) rows = [...rows].reverse();
    } else if (order !== "created" || !ascending) {
      // The real default is "last seen, newest first": never creation order.
      rows = [...rows].reverse();
    }
    const requested = Number.parseInt(query.get("page") ?? "", 10);
    const page = Number.isFinite(requested) && requested > 1
      ? requested - 1
      : 0;
    const slice = rows.slice(page * 100, page * 100 + 100);
    if (withEmails) {
      staffActionLog.push({
        action: "show_emails",
        actingUser: viewer.username,
        context: path,
        at: Date.now(),
      });
    }
    return jsonResponse(
      200,
      slice.map((user) => serializeAdminRow(user, withEmails)),
    );
  };

  /**
   * AdminDetailedUserSerializer, trimmed to what is safe to rely on: the
   * SSO record (null when none) is the only per-user place the
   * DiscourseConnect external id shows; no profile fields, no bio.
   */
  const adminUser = (id: number): Response => {
    const user = users.get(id);
    if (!user) throw new Failure(404, notFoundBody);
    const out: Record<string, unknown> = {
      id: user.id,
      username: user.username,
    };
    if (namesEnabled) out.name = isBlank(user.name) ? null : user.name;
    Object.assign(out, {
      avatar_template: avatarTemplate(user),
      active: user.active !== false,
      admin: user.admin === true,
      moderator: user.moderator === true,
      staged: user.staged === true,
      trust_level: user.trust_level ?? 1,
      created_at: createdAt(user),
      suspended_till: isSuspended(user) ? user.suspended_till : null,
      single_sign_on_record: user.external_id === undefined ? null : {
        user_id: user.id,
        external_id: user.external_id,
        external_username: user.username,
        external_name: user.name ?? null,
        external_avatar_url: null,
        created_at: createdAt(user),
        updated_at: createdAt(user),
      },
    });
    return jsonResponse(200, out);
  };

  const cards = (
    viewer: DiscourseScenarioUser,
    query: URLSearchParams,
  ): Response => {
    const raw = query.get("user_ids");
    if (raw === null || raw.trim() === "") {
      throw new Failure(400, missingParamBody("user_ids"));
    }
    const ids = raw.split(",").map((id) => Number.parseInt(id, 10) || 0);
    if (ids.length > 50) throw new Failure(400, invalidParamBody("user_ids"));
    const wanted = new Set(ids);
    const found = [...users.values()]
      .filter((user) => wanted.has(user.id))
      .filter((user) => user.active !== false || isStaff(viewer))
      .sort((a, b) => a.id - b.id)
      .map((user) => {
        const card: Record<string, unknown> = {
          id: user.id,
          username: user.username,
          avatar_template: avatarTemplate(user),
        };
        if (namesEnabled && !isBlank(user.name)) card.name = user.name;
        if (!isBlank(user.location)) card.location = user.location;
        if (!isBlank(user.website)) card.website = user.website;
        if (!isBlank(user.bio_raw)) {
          card.bio_excerpt = excerpt(cookMarkdown(user.bio_raw!));
        }
        card.moderator = user.moderator === true;
        card.admin = user.admin === true;
        return card;
      });
    return jsonResponse(200, { users: found });
  };

  const createUser = (
    viewer: DiscourseScenarioUser,
    params: Params,
  ): Response => {
    const rawEmail = requiredParam(params, "email");
    const username = requiredParam(params, "username");
    const name = scalarParam(params, "name") ?? "";
    const password = scalarParam(params, "password");
    const fail = (message: string, errors?: Record<string, string[]>) =>
      jsonResponse(200, {
        success: false,
        message,
        ...(errors
          ? { errors, values: { name, username, email: rawEmail } }
          : {}),
        ...(errors ? { is_developer: false } : {}),
      });
    if (password !== undefined && password.length > 200) {
      return fail("Password is too long.");
    }
    if (matchesReserved(username.toLowerCase(), reserved)) {
      return fail("That username is not allowed.");
    }
    const email = rawEmail.trim().toLowerCase();
    const errors: Record<string, string[]> = {};
    const add = (field: string, message: string) => {
      (errors[field] ??= []).push(message);
    };
    const formatError = usernameFormatError(username, site);
    if (formatError) add("username", formatError);
    else if (usernameTaken(username)) add("username", "must be unique");
    if (!isValidEmail(email)) add("email", "is invalid");
    if (charLength(name) > 255) {
      add("name", "is too long (maximum is 255 characters)");
    }
    if (password !== undefined && password !== "" && password.length < 10) {
      add("password", "is too short (minimum is 10 characters)");
    }
    const owner = isValidEmail(email) ? ownerOfEmail(email) : undefined;
    const active = viewer.admin === true && truthyParam(params, "active");
    const almostDone =
      `You're almost done! We sent an activation mail to <b>${email}</b>. Please follow the instructions in the email to activate your account.`;
    if (owner && owner.staged !== true) {
      // hide_email_address_taken: the caller cannot tell, nothing is created.
      return jsonResponse(200, {
        success: true,
        active: false,
        message: almostDone,
      });
    }
    if (Object.keys(errors).length > 0) {
      const full = Object.entries(errors).flatMap(([field, messages]) =>
        messages.map((message) =>
          `${field[0].toUpperCase()}${field.slice(1)} ${message}`
        )
      );
      return fail(full.join("\n"), errors);
    }
    // A staged account with that address is taken over, as Discourse does.
    const id = owner?.id ?? users.nextId();
    const created: DiscourseScenarioUser = {
      ...(owner ?? {}),
      id,
      username,
      name,
      email,
      active,
      admin: false,
      staged: false,
    };
    users.set(id, created);
    return jsonResponse(200, {
      success: true,
      active,
      message: active
        ? "Your account is activated and ready to use."
        : almostDone,
    });
  };

  const syncSso = async (params: Params): Promise<Response> => {
    if (!connectEnabled) throw new Failure(404, notFoundBody);
    const sso = requiredParam(params, "sso");
    const sig = requiredParam(params, "sig");
    const expected = await signDiscourseConnect(
      sso,
      site.discourseConnectSecret!,
    );
    if (sig !== expected) {
      const message = /[^a-zA-Z0-9=\r\n/+]/.test(sso)
        ? "The SSO field should be Base64 encoded, using only A-Z, a-z, 0-9, +, /, and = characters."
        : "Bad signature for payload";
      throw new Failure(422, { failed: "FAILED", message });
    }
    let payload: URLSearchParams;
    try {
      payload = new URLSearchParams(decodeBase64(sso));
    } catch {
      throw new Failure(422, {
        failed: "FAILED",
        message: "The SSO payload is not Base64.",
      });
    }
    const externalId = payload.get("external_id") ?? "";
    if (externalId.trim() === "") {
      throw new Failure(422, {
        failed: "FAILED",
        message: "Account login timed out, please try logging in again.",
      });
    }
    const email = payload.get("email")?.trim().toLowerCase();
    const name = payload.get("name");
    const bio = payload.get("bio");
    const location = payload.get("location");
    const website = payload.get("website");

    let user = [...users.values()].find((u) => u.external_id === externalId);
    let created = false;
    if (!user && email) {
      user = ownerOfEmail(email);
      if (user) user.external_id = externalId;
    }
    if (!user) {
      if (!email || !isValidEmail(email)) {
        throw new Failure(403, {
          failed: "FAILED",
          message: "Validation failed: Primary email is invalid",
        });
      }
      const id = users.nextId();
      user = {
        id,
        username: uniqueUsername(
          payload.get("username") || name || email.split("@")[0],
        ),
        name: name ?? "",
        email,
        external_id: externalId,
        active: payload.get("require_activation") !== "true",
      };
      users.set(id, user);
      created = true;
    } else {
      if (site.ssoOverridesEmail && email && isValidEmail(email)) {
        user.email = email;
      }
      if (site.authOverridesName && name !== null) user.name = name;
    }
    if (
      bio !== null && (created || isBlank(user.bio_raw) || site.ssoOverridesBio)
    ) {
      user.bio_raw = bio;
    }
    if (
      location !== null &&
      (created || isBlank(user.location) || site.ssoOverridesLocation)
    ) {
      user.location = location;
    }
    if (
      website !== null &&
      (created || isBlank(user.website) || site.ssoOverridesWebsite)
    ) {
      user.website = isBlank(website) ? "" : formatWebsite(website);
    }
    const admin = users.byUsername(scenario.apiUser)!;
    return jsonResponse(200, {
      ...serializeUser(user, admin),
      email: user.email,
      secondary_emails: [...(user.secondary_emails ?? [])],
      active: user.active !== false,
      staged: user.staged === true,
      single_sign_on_record: {
        external_id: user.external_id,
        external_username: payload.get("username"),
        external_email: email ?? null,
        external_name: name,
      },
    });
  };

  // -------------------------------------------------------------------------

  const ipLimited = (ip: string): Response | undefined => {
    let windows = ipWindows.get(ip);
    if (!windows) {
      windows = {
        ten: new SlidingWindow(ipPer10, windowMs / 6),
        sixty: new SlidingWindow(ipPer60, windowMs),
      };
      ipWindows.set(ip, windows);
    }
    const now = clock();
    const tenWait = windows.ten.waitMs(now);
    const sixtyWait = windows.sixty.waitMs(now);
    if (tenWait > 0 || sixtyWait > 0) {
      ip429s++;
      return tenWait > 0
        ? ipRateLimitResponse(retryAfterSeconds(tenWait), "ip_10_secs_limit")
        : ipRateLimitResponse(retryAfterSeconds(sixtyWait), "ip_60_secs_limit");
    }
    windows.ten.tryAcquire(now);
    windows.sixty.tryAcquire(now);
    return undefined;
  };

  const handle = async (call: IncomingCall): Promise<Answer> => {
    const fault = faults.take(call.path, (f) => f.kind !== "moodle-exception");
    if (fault) {
      const shared = await applySharedFault(fault, {
        rateLimitJson: (seconds) =>
          jsonResponse(
            429,
            adminRateLimitBody(seconds),
            adminRateLimitHeaders(seconds),
          ),
        rateLimitText: (seconds) =>
          ipRateLimitResponse(seconds, "ip_10_secs_limit"),
        truncatedJson: '{"user_badges":[],"user":{"id":1,"username":"trunc',
      }, call.signal);
      if (shared !== undefined) return shared;
    }
    const limited = ipLimited(call.remoteAddress);
    if (limited) return limited;

    const route = resolveRoute(call.method, call.path);
    const acceptsJson = (call.headers.get("accept") ?? "").toLowerCase()
      .includes(
        "application/json",
      );
    const jsonErrors = acceptsJson &&
      (call.path.endsWith(".json") || route?.kind === "syncSso");
    const failWith = (failure: Failure): Response =>
      jsonErrors
        ? jsonResponse(failure.status, failure.body)
        : htmlResponse(failure.status, htmlTitles[failure.status] ?? "Error");

    if (!route) return failWith(new Failure(404, notFoundBody));
    if (route.kind === "userPage") {
      // The Ember app shell: a 200 page whatever the user, data-less.
      return new Response(
        "<!DOCTYPE html>\n<html><head><title>Discourse</title></head><body></body></html>\n",
        {
          status: 200,
          headers: { "content-type": "text/html; charset=utf-8" },
        },
      );
    }
    const adminRoute = call.path.startsWith("/admin/");

    // Credentials come from headers only; query-string ones are ignored.
    const key = call.headers.get("api-key");
    const apiUsername = call.headers.get("api-username");
    const viewer = key !== null && key === scenario.apiKey && apiUsername
      ? users.byUsername(apiUsername)
      : undefined;
    if (!viewer) {
      return failWith(
        adminRoute
          ? new Failure(404, notFoundBody)
          : new Failure(403, invalidCredentialsBody),
      );
    }
    if (viewer.admin === true) {
      const wait = adminWindow.tryAcquire(clock());
      if (wait > 0) {
        admin429s++;
        const seconds = retryAfterSeconds(wait);
        return jsonErrors
          ? jsonResponse(
            429,
            adminRateLimitBody(seconds),
            adminRateLimitHeaders(seconds),
          )
          : new Response(adminRateLimitBody(seconds).errors[0], {
            status: 429,
            headers: {
              "content-type": "text/plain; charset=utf-8",
              ...adminRateLimitHeaders(seconds),
            },
          });
      }
    }
    if (adminRoute && !isStaff(viewer)) {
      return failWith(new Failure(404, notFoundBody));
    }

    try {
      switch (route.kind) {
        case "showUser":
          return showUser(
            visibleUser(route.username, viewer),
            viewer,
            call.query,
          );
        case "byExternal": {
          const user = connectEnabled
            ? [...users.values()].find((u) =>
              u.external_id === route.externalId
            )
            : undefined;
          if (!user) throw new Failure(404, notFoundBody);
          return showUser(
            visibleUser(user.username, viewer),
            viewer,
            call.query,
          );
        }
        case "updateUser":
          return updateUser(route.username, viewer, await readParams(call));
        case "emails":
          return emails(route.username, viewer);
        case "changeEmail":
          return changeEmail(route.username, viewer, await readParams(call));
        case "adminList":
          return adminList(route.flag, viewer, call.path, call.query);
        case "adminUser":
          return adminUser(route.id);
        case "cards":
          return cards(viewer, call.query);
        case "createUser":
          return createUser(viewer, await readParams(call));
        case "syncSso":
          return await syncSso(await readParams(call));
      }
    } catch (failure) {
      if (failure instanceof Failure) return failWith(failure);
      throw failure;
    }
  };

  const server = await startHttpDouble({
    port: scenario.port,
    recordBodies: scenario.recordBodies,
    recordRequests: scenario.recordRequests,
    handle,
  });

  return {
    url: server.origin,
    apiKey: scenario.apiKey,
    apiUser: scenario.apiUser,
    users,
    userByUsername: (username) => users.byUsername(username),
    requests: server.requests,
    emailChangeRequests,
    staffActionLog,
    inject: (fault) => faults.inject(fault),
    foreignLoad: (n) => {
      adminWindow.spend(n, clock());
    },
    rateLimited429s: () => admin429s,
    ipRateLimited429s: () => ip429s,
    adminWindowUsed: () => adminWindow.used(clock()),
    profileViews: (username) => {
      const user = users.byUsername(username);
      return user ? profileViews.get(user.id) ?? 0 : 0;
    },
    requestCount: server.requestCount,
    close: server.close,
  };
};
