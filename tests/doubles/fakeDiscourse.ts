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
  /** ISO time; the account is suspended while it lies in the future. */
  suspended_till?: string;
  /** ISO time the suspension began; default the creation time. */
  suspended_at?: string;
  suspend_reason?: string;
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
  /**
   * More names usernames must not clash with (default the automatic
   * groups' names); the live groups' names are always taken too.
   */
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

/** A manual group; the automatic ones always exist and follow the users. */
export interface DiscourseScenarioGroup {
  /** Default: the next free id from 41 up (ids below are automatic ones'). */
  id?: number;
  name: string;
  full_name?: string;
  /** 0 public (default), 1 logged-on users, 2 members, 3 staff, 4 owners. */
  visibility_level?: number;
  bio_raw?: string;
  /** Usernames (case-insensitive); owners are members too. */
  members?: string[];
  owners?: string[];
}

/**
 * A hostile forum (or a proxy rewriting its answers): requests about one
 * account are answered with another account's data.
 */
export interface WrongAccountAnswer {
  /** The username of `/u/{username}.json`, or the id of `by-external`. */
  readonly asked: { readonly username: string } | {
    readonly externalId: string;
  };
  /** The account whose data is answered instead. */
  readonly answeredWith: string;
  /** Which answers lie; default reads only. An update is still applied to the asked account. */
  readonly on?: ReadonlyArray<"read" | "update">;
  /** Put `external_id` into the lying answer, as some plugins do. */
  readonly withExternalId?: boolean;
}

export interface DiscourseScenario extends RecordingOptions {
  apiKey: string;
  /** Must name an admin in `users`; added automatically if absent. */
  apiUser: string;
  users: DiscourseScenarioUser[];
  groups?: DiscourseScenarioGroup[];
  site?: DiscourseSite;
  rateLimit?: DiscourseRateLimit;
  /** Fixed port; default an ephemeral one. */
  port?: number;
  /** Monotonic milliseconds for the rate limiters; default performance.now. */
  clock?: () => number;
  /** Hostile: answers about some accounts name other accounts. */
  wrongAccount?: ReadonlyArray<WrongAccountAnswer>;
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
  /** Live groups, automatic ones included, by id. */
  groups: ReadonlyMap<number, FakeGroup>;
  /** Case-insensitive. */
  groupByName(name: string): FakeGroup | undefined;
  /** Usernames of a group's members (owners included), sorted; [] if none. */
  groupMembers(name: string): string[];
  /** Suspension messages, which Discourse emails to the suspended user. */
  suspensionEmails: Array<{ username: string; message: string }>;
  requestCount(): number;
  /** Changes the answer latency for requests from now on. */
  setLatency(ms: number): void;
  close(): Promise<void>;
}

/** A group as the double keeps it; automatic groups compute their members. */
export interface FakeGroup {
  readonly id: number;
  name: string;
  full_name?: string;
  visibility_level: number;
  bio_raw?: string;
  readonly automatic: boolean;
  /** Manual groups only: user ids. Automatic groups leave them empty. */
  readonly memberIds: Set<number>;
  readonly ownerIds: Set<number>;
  readonly createdAt: string;
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

/** Group::AUTO_GROUPS: name -> id, and who belongs. */
const automaticGroups: ReadonlyArray<
  {
    id: number;
    name: string;
    includes: (user: DiscourseScenarioUser) => boolean;
  }
> = [
  { id: 0, name: "everyone", includes: () => false },
  { id: 1, name: "admins", includes: (user) => user.admin === true },
  { id: 2, name: "moderators", includes: (user) => user.moderator === true },
  {
    id: 3,
    name: "staff",
    includes: (user) => user.admin === true || user.moderator === true,
  },
  ...[0, 1, 2, 3, 4].map((level) => ({
    id: 10 + level,
    name: `trust_level_${level}`,
    // Trust level groups are cumulative: trust_level_1 holds TL1 and up.
    includes: (user: DiscourseScenarioUser) => (user.trust_level ?? 1) >= level,
  })),
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
      // Line breaks are hard breaks; the spaces before one are dropped.
      return `<p>${
        lines.map((line) => cookInline(line.trimEnd())).join("<br>\n")
      }</p>`;
    }).join("\n");
};

const decodeEntities = (html: string): string =>
  html.replace(
    /&(#\d+|#x[0-9a-f]+|amp|lt|gt|quot|apos|nbsp);/gi,
    (all, code) => {
      const lower = String(code).toLowerCase();
      if (lower.startsWith("#x")) {
        return String.fromCodePoint(Number.parseInt(lower.slice(2), 16));
      }
      if (lower.startsWith("#")) {
        return String.fromCodePoint(Number.parseInt(lower.slice(1), 10));
      }
      const named: Record<string, string> = {
        amp: "&",
        lt: "<",
        gt: ">",
        quot: '"',
        apos: "'",
        nbsp: "\u00a0",
      };
      return named[lower] ?? all;
    },
  );

/** ERB::Util.html_escape. */
const erbEscape = (text: string): string =>
  text.replace(
    /[&<>"']/g,
    (char) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[
        char
      ]!,
  );

/** ExcerptParser#escape_attribute. */
const escapeAttribute = (value: string): string =>
  value.replace(/&/g, "&amp;").replace(/"/g, "&#34;").replace(/</g, "&lt;")
    .replace(/>/g, "&gt;");

/**
 * UserProfile#bio_excerpt(350, keep_newlines: true), as Discourse's
 * ExcerptParser builds it from the cooked bio: text is re-escaped, a closing
 * </p> or a <br> becomes an uncounted "<br>", the newlines between blocks
 * stay and count, links stay as tags unless `keepLinks` is false (TL0 and
 * suspended users), a cut ends in "&hellip;", a trailing "<br>" is dropped.
 */
export const bioExcerpt = (
  cooked: string,
  keepLinks = true,
  length = 350,
): string => {
  let out = "";
  let counted = 0;
  let inLink = false;
  for (const token of cooked.match(/<[^>]*>|[^<]+/g) ?? []) {
    if (token.startsWith("<")) {
      const tag = /^<\s*(\/?)\s*([a-zA-Z0-9]+)/.exec(token);
      if (!tag) continue;
      const closing = tag[1] === "/";
      const name = tag[2].toLowerCase();
      if (name === "a" && keepLinks) {
        if (closing) {
          out += "</a>";
          inLink = false;
        } else {
          const attributes = [...token.matchAll(/([\w-]+)="([^"]*)"/g)]
            .map(([, key, value]) =>
              `${key}="${escapeAttribute(decodeEntities(value))}"`
            );
          out += `<a ${attributes.join(" ")}>`;
          inLink = true;
        }
      } else if ((closing && name === "p") || name === "br") {
        out += "<br>";
      }
      continue;
    }
    const characters = [...decodeEntities(token)];
    if (counted + characters.length > length) {
      // Ruby's string[0..n] keeps n + 1 characters.
      const kept = Math.max(0, length - counted - 1) + 1;
      out += erbEscape(characters.slice(0, kept).join(""));
      out += "&hellip;";
      if (inLink) out += "</a>";
      break;
    }
    out += erbEscape(characters.join(""));
    counted += characters.length;
  }
  return out.trim().replace(/<br>$/, "");
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

/** Links in a bio excerpt are kept for TL1+ accounts that are not suspended. */
const keepsLinks = (user: DiscourseScenarioUser): boolean =>
  (user.trust_level ?? 1) >= 1 && !isSuspended(user);

/** The suspension fields the user JSON and user cards show. */
const suspensionOf = (
  user: DiscourseScenarioUser,
  viewer: DiscourseScenarioUser,
): Record<string, unknown> => {
  if (!isSuspended(user)) return {};
  return {
    suspended_till: user.suspended_till,
    // can_see_suspension_reason?: staff, or the user themselves.
    ...(isStaff(viewer) || viewer.id === user.id
      ? { suspend_reason: user.suspend_reason ?? null }
      : {}),
  };
};

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
  | { kind: "userPage" }
  | { kind: "groupShow"; name: string }
  | { kind: "groupMembers"; name: string }
  | { kind: "groupAdd"; id: string }
  | { kind: "groupRemove"; id: string }
  | { kind: "groupCreate" }
  | { kind: "suspend"; id: string }
  | { kind: "unsuspend"; id: string };

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
  if (first === "groups" && parts.length === 2 && method === "GET") {
    return { kind: "groupShow", name: second };
  }
  if (first === "groups" && parts.length === 3 && third === "members") {
    if (method === "GET") return { kind: "groupMembers", name: second };
    if (method === "PUT") return { kind: "groupAdd", id: second };
    if (method === "DELETE") return { kind: "groupRemove", id: second };
  }
  if (
    first === "admin" && second === "groups" && parts.length === 2 &&
    method === "POST"
  ) {
    return { kind: "groupCreate" };
  }
  if (
    first === "admin" && second === "users" && parts.length === 4 &&
    method === "PUT" && (fourth === "suspend" || fourth === "unsuspend")
  ) {
    return { kind: fourth, id: third };
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
  const suspensionEmails: Array<{ username: string; message: string }> = [];

  // Groups: the automatic ones first, with Discourse's own ids.
  const groups = new Map<number, FakeGroup>();
  const addedAt = new Map<FakeGroup, Map<number, string>>();
  const groupByName = (name: string): FakeGroup | undefined => {
    const lower = name.toLowerCase();
    for (const group of groups.values()) {
      if (group.name.toLowerCase() === lower) return group;
    }
    return undefined;
  };
  const siteCreatedAt = new Date(Date.UTC(2021, 0, 1)).toISOString();
  for (const auto of automaticGroups) {
    groups.set(auto.id, {
      id: auto.id,
      name: auto.name,
      visibility_level: 1,
      automatic: true,
      memberIds: new Set(),
      ownerIds: new Set(),
      createdAt: siteCreatedAt,
    });
  }
  const nextGroupId = (): number => Math.max(40, ...groups.keys()) + 1;
  for (const wanted of scenario.groups ?? []) {
    // A scenario that breaks Discourse's own rules is a test's mistake.
    const problem = usernameFormatError(wanted.name, site) ??
      (groupByName(wanted.name) || users.byUsername(wanted.name)
        ? "is already taken"
        : undefined);
    if (problem) {
      throw new Error(`scenario group "${wanted.name}": name ${problem}`);
    }
    const idOf = (username: string): number => {
      const user = users.byUsername(username);
      if (!user) {
        throw new Error(
          `scenario group "${wanted.name}": no user "${username}"`,
        );
      }
      return user.id;
    };
    const owners = (wanted.owners ?? []).map(idOf);
    const group: FakeGroup = {
      id: wanted.id ?? nextGroupId(),
      name: wanted.name,
      full_name: wanted.full_name,
      visibility_level: wanted.visibility_level ?? 0,
      bio_raw: wanted.bio_raw,
      automatic: false,
      memberIds: new Set([...(wanted.members ?? []).map(idOf), ...owners]),
      ownerIds: new Set(owners),
      createdAt: siteCreatedAt,
    };
    if (groups.has(group.id)) {
      throw new Error(`scenario group "${wanted.name}": id ${group.id} taken`);
    }
    groups.set(group.id, group);
    addedAt.set(
      group,
      new Map([...group.memberIds].map((id) => [id, siteCreatedAt])),
    );
  }
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
    groupNames.includes(username.toLowerCase()) ||
    groupByName(username) !== undefined;

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

  /** UserSerializer extends UserCardSerializer: the card, and the editables. */
  const serializeUser = (
    user: DiscourseScenarioUser,
    viewer: DiscourseScenarioUser,
  ): Record<string, unknown> => {
    const editable = canEdit(viewer, user);
    const out = serializeCard(user, viewer);
    if (!isBlank(user.bio_raw)) {
      if (editable) out.bio_raw = user.bio_raw;
      out.bio_cooked = cookMarkdown(user.bio_raw!);
    }
    Object.assign(out, groupsOf(user, viewer), {
      user_fields: {},
      can_edit: editable,
      can_edit_username: editable,
      can_edit_email: editable && site.ssoOverridesEmail !== true,
      can_edit_name: editable && canChangeName,
      can_change_bio: editable && site.ssoOverridesBio !== true,
      can_change_location: editable && site.ssoOverridesLocation !== true,
      can_change_website: editable && site.ssoOverridesWebsite !== true,
    });
    return out;
  };

  /** UserCardSerializer: blank untrusted fields and empty user_fields omitted. */
  const serializeCard = (
    user: DiscourseScenarioUser,
    viewer: DiscourseScenarioUser,
  ): Record<string, unknown> => {
    const card: Record<string, unknown> = {
      id: user.id,
      username: user.username,
      avatar_template: avatarTemplate(user),
    };
    if (namesEnabled && !isBlank(user.name)) card.name = user.name;
    if (!isBlank(user.location)) card.location = user.location;
    if (!isBlank(user.website)) {
      card.website = user.website;
      try {
        const url = new URL(user.website!);
        card.website_name = `${url.hostname.replace(/^www\./, "")}${
          url.pathname === "/" ? "" : url.pathname
        }`;
      } catch {
        // A website that is not a URL has no website_name.
      }
    }
    if (!isBlank(user.bio_raw)) {
      const text = bioExcerpt(cookMarkdown(user.bio_raw!), keepsLinks(user));
      if (text !== "") card.bio_excerpt = text;
    }
    Object.assign(card, {
      title: null,
      created_at: createdAt(user),
      last_seen_at: null,
      last_posted_at: null,
      trust_level: user.trust_level ?? 1,
      moderator: user.moderator === true,
      admin: user.admin === true,
      ...suspensionOf(user, viewer),
    });
    if (isStaff(viewer)) card.staged = user.staged === true;
    return card;
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
      out.suspended_at = user.suspended_at ?? createdAt(user);
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

  /** The account a hostile scenario answers with instead of `user`. */
  const liar = (
    user: DiscourseScenarioUser,
    on: "read" | "update",
    asked: "username" | "externalId",
  ): WrongAccountAnswer | undefined =>
    (scenario.wrongAccount ?? []).find((lie) =>
      (lie.on ?? ["read"]).includes(on) &&
      ("username" in lie.asked
        ? asked === "username" &&
          lie.asked.username.toLowerCase() === user.username.toLowerCase()
        : asked === "externalId" && lie.asked.externalId === user.external_id)
    );
  const answeredUser = (
    user: DiscourseScenarioUser,
    viewer: DiscourseScenarioUser,
    on: "read" | "update",
    asked: "username" | "externalId",
  ): Record<string, unknown> => {
    const lie = liar(user, on, asked);
    const other = lie && users.byUsername(lie.answeredWith);
    if (!lie || !other) return serializeUser(user, viewer);
    return {
      ...serializeUser(other, viewer),
      ...(lie.withExternalId ? { external_id: other.external_id ?? null } : {}),
    };
  };

  const showUser = (
    user: DiscourseScenarioUser,
    viewer: DiscourseScenarioUser,
    query: URLSearchParams,
    asked: "username" | "externalId" = "username",
  ): Response => {
    // Rails tests `!params[:skip_track_visit]`: any value skips the view.
    if (!query.has("skip_track_visit") && user.id !== viewer.id) {
      profileViews.set(user.id, (profileViews.get(user.id) ?? 0) + 1);
    }
    return jsonResponse(200, {
      user_badges: [],
      user: answeredUser(user, viewer, "read", asked),
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
      user: answeredUser(user, viewer, "update", "username"),
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
      suspended_at: isSuspended(user)
        ? user.suspended_at ?? createdAt(user)
        : null,
      suspended_till: isSuspended(user) ? user.suspended_till : null,
      suspend_reason: isSuspended(user) ? user.suspend_reason ?? null : null,
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

  // -------------------------------------------------------------------------
  // Groups (groups_controller.rb, admin/groups_controller.rb)

  /** Human members (id > 0), owners included. */
  const membersOf = (group: FakeGroup): DiscourseScenarioUser[] => {
    if (group.automatic) {
      const rule = automaticGroups.find((auto) => auto.id === group.id)!;
      return [...users.values()].filter((user) =>
        user.id > 0 && rule.includes(user)
      );
    }
    return [...group.memberIds].map((id) => users.get(id))
      .filter((user): user is DiscourseScenarioUser =>
        user !== undefined && user.id > 0
      );
  };

  // An automatic group's user_count scans every user: once per change of
  // the user table, not once per profile read (the benchmark reads 10,000).
  let automaticCounts:
    | { version: number; counts: Map<number, number> }
    | undefined;
  const userCount = (group: FakeGroup): number => {
    if (!group.automatic) return membersOf(group).length;
    if (automaticCounts?.version !== users.version) {
      automaticCounts = { version: users.version, counts: new Map() };
    }
    const known = automaticCounts.counts.get(group.id);
    if (known !== undefined) return known;
    const count = membersOf(group).length;
    automaticCounts.counts.set(group.id, count);
    return count;
  };

  const belongsTo = (group: FakeGroup, user: DiscourseScenarioUser) => {
    if (!group.automatic) return group.memberIds.has(user.id);
    const rule = automaticGroups.find((auto) => auto.id === group.id)!;
    return user.id > 0 && rule.includes(user);
  };

  /**
   * `groups` and `group_users` of UserSerializer (discourse/discourse,
   * app/serializers/user_serializer.rb): `has_many :groups, embed: :object,
   * serializer: BasicGroupSerializer` with `object.groups.order(:id)
   * .visible_groups(scope.user)`, i.e. every group the user belongs to,
   * automatic ones (trust_level_N, staff...) included, ordered by id, those
   * the viewer may see (an admin sees all); `group_users` (group_id,
   * user_id, notification_level, owner) only for admins and the user.
   */
  const groupsOf = (
    user: DiscourseScenarioUser,
    viewer: DiscourseScenarioUser,
  ): Record<string, unknown> => {
    const joined = [...groups.values()]
      .filter((group) => belongsTo(group, user) && canSeeGroup(group, viewer))
      .sort((a, b) => a.id - b.id);
    return {
      groups: joined.map((group) => basicGroup(group, viewer)),
      ...(viewer.admin === true || viewer.id === user.id
        ? {
          group_users: joined.map((group) => ({
            group_id: group.id,
            user_id: user.id,
            notification_level: 3,
            owner: group.ownerIds.has(user.id),
          })),
        }
        : {}),
    };
  };

  /** Guardian#can_see_groups? for one group. */
  const canSeeGroup = (
    group: FakeGroup,
    viewer: DiscourseScenarioUser,
  ): boolean => {
    if (viewer.admin === true || group.visibility_level === 0) return true;
    if (isStaff(viewer) && group.visibility_level === 3) return true;
    if (group.visibility_level === 1) return true;
    if (!group.memberIds.has(viewer.id)) return false;
    return group.visibility_level !== 4 || group.ownerIds.has(viewer.id);
  };

  /** GroupsController#find_group: by name, 404 when unseen or missing. */
  const visibleGroup = (
    name: string,
    viewer: DiscourseScenarioUser,
  ): FakeGroup => {
    const group = groupByName(name);
    if (!group || !canSeeGroup(group, viewer)) {
      throw new Failure(404, notFoundBody);
    }
    return group;
  };

  /** Group.find(params[:id]): by numeric id only. */
  const groupById = (id: string): FakeGroup => {
    const group = /^\d+$/.test(id) ? groups.get(Number(id)) : undefined;
    if (!group) throw new Failure(404, notFoundBody);
    return group;
  };

  /** Guardian#ensure_can_edit!(group): never automatic; admins or owners. */
  const ensureCanEditGroup = (
    group: FakeGroup,
    viewer: DiscourseScenarioUser,
  ): void => {
    const allowed = !group.automatic &&
      (viewer.admin === true || group.ownerIds.has(viewer.id));
    if (!allowed) throw new Failure(403, notPermittedBody);
  };

  const basicGroup = (
    group: FakeGroup,
    viewer: DiscourseScenarioUser,
  ): Record<string, unknown> => ({
    id: group.id,
    automatic: group.automatic,
    name: group.name,
    display_name: group.name,
    user_count: userCount(group),
    mentionable_level: 0,
    messageable_level: 0,
    visibility_level: group.visibility_level,
    primary_group: false,
    title: null,
    grant_trust_level: null,
    has_messages: false,
    flair_url: null,
    flair_bg_color: null,
    flair_color: null,
    bio_raw: isBlank(group.bio_raw) ? null : group.bio_raw,
    bio_cooked: isBlank(group.bio_raw) ? null : cookMarkdown(group.bio_raw!),
    public_admission: false,
    public_exit: false,
    allow_membership_requests: false,
    full_name: isBlank(group.full_name) ? null : group.full_name,
    default_notification_level: 3,
    membership_request_template: null,
    members_visibility_level: 0,
    can_see_members: true,
    can_admin_group: viewer.admin === true,
    publish_read_state: false,
  });

  const showGroup = (
    name: string,
    viewer: DiscourseScenarioUser,
  ): Response => {
    const group = visibleGroup(name, viewer);
    const visibleNames = [...groups.values()]
      .filter((candidate) => canSeeGroup(candidate, viewer))
      .filter((candidate) =>
        isStaff(viewer) || !candidate.automatic || candidate.id === 2
      )
      .map((candidate) => candidate.name);
    return jsonResponse(200, {
      group: {
        ...basicGroup(group, viewer),
        is_group_user: group.memberIds.has(viewer.id),
        is_group_owner: group.ownerIds.has(viewer.id),
      },
      extras: { visible_group_names: visibleNames },
    });
  };

  /** ApplicationController#fetch_int_from_params: digits only, in range. */
  const intParam = (
    query: URLSearchParams,
    name: string,
    fallback: number,
    max: number,
  ): number => {
    const raw = query.get(name);
    if (raw === null) return fallback;
    if (!/^\s*[-+]?\d+\s*$/.test(raw)) {
      throw new Failure(400, invalidParamBody(name));
    }
    const value = Number.parseInt(raw, 10);
    if (value < 0 || value > max) {
      throw new Failure(400, invalidParamBody(name));
    }
    return value;
  };

  const groupMembers = (
    name: string,
    viewer: DiscourseScenarioUser,
    query: URLSearchParams,
  ): Response => {
    const group = visibleGroup(name, viewer);
    const limit = intParam(query, "limit", 50, 1000);
    // Ruby's to_i: garbage is 0; only a negative number is refused.
    const offset = Number.parseInt(query.get("offset") ?? "0", 10) || 0;
    if (offset < 0) throw new Failure(400, invalidParamBody("offset"));
    const ascending = (query.get("asc") ?? "") !== "";
    const since = addedAt.get(group);
    const ordered = membersOf(group).sort((a, b) => {
      // ORDER BY NOT owner, username_lower DESC (ASC with asc=...).
      const byOwner = Number(group.ownerIds.has(b.id)) -
        Number(group.ownerIds.has(a.id));
      if (byOwner !== 0) return byOwner;
      const byName = a.username.toLowerCase().localeCompare(
        b.username.toLowerCase(),
      );
      return ascending ? byName : -byName;
    });
    const serialize = (user: DiscourseScenarioUser) => ({
      id: user.id,
      username: user.username,
      name: namesEnabled && !isBlank(user.name) ? user.name : null,
      avatar_template: avatarTemplate(user),
      title: null,
      last_posted_at: null,
      last_seen_at: null,
      added_at: since?.get(user.id) ?? group.createdAt,
      timezone: null,
    });
    return jsonResponse(200, {
      members: ordered.slice(offset, offset + limit).map(serialize),
      owners: ordered.filter((user) => group.ownerIds.has(user.id)).map(
        serialize,
      ),
      meta: { total: ordered.length, limit, offset },
    });
  };

  /**
   * GroupsController#users_from_params. The lists are split on "," only:
   * "a, b" names " b", which matches nobody. A list that matches nobody is
   * 400; no list at all is an empty result the caller judges.
   */
  const usersFromParams = (params: Params): DiscourseScenarioUser[] => {
    const present = (name: string): unknown => {
      const value = params[name];
      if (value === undefined || value === null) return undefined;
      if (typeof value === "string" && value.trim() === "") return undefined;
      return value;
    };
    const list = (name: string): string[] => {
      const value = present(name);
      // Rails would call String#split on an array and crash: a 500.
      if (typeof value !== "string") throw new Failure(500, {});
      return value.split(",");
    };
    // One row per user, in id order, as the SQL `WHERE ... IN` returns them.
    const found = (
      name: string,
      candidates: Array<DiscourseScenarioUser | undefined>,
    ): DiscourseScenarioUser[] => {
      const unique = new Map<number, DiscourseScenarioUser>();
      for (const user of candidates) if (user) unique.set(user.id, user);
      if (unique.size === 0) throw new Failure(400, invalidParamBody(name));
      return [...unique.values()].sort((a, b) => a.id - b.id);
    };
    const byId = (raw: string) =>
      /^\s*\d+\s*$/.test(raw) ? users.get(Number(raw)) : undefined;
    if (present("usernames") !== undefined) {
      return found(
        "usernames",
        list("usernames").map((name) => users.byUsername(name)),
      );
    }
    if (present("user_id") !== undefined) {
      return found("user_id", [byId(String(params.user_id))]);
    }
    if (present("user_ids") !== undefined) {
      return found("user_ids", list("user_ids").map(byId));
    }
    if (present("user_emails") !== undefined) {
      const wanted = new Set(
        list("user_emails").map((email) => email.trim().toLowerCase()),
      );
      return found(
        "user_emails",
        [...users.values()].filter((user) =>
          emailsOf(user).some((email) => wanted.has(email))
        ),
      );
    }
    return [];
  };

  const addMembers = (
    id: string,
    viewer: DiscourseScenarioUser,
    params: Params,
  ): Response => {
    const group = groupById(id);
    ensureCanEditGroup(group, viewer);
    const found = usersFromParams(params);
    if (found.length === 0) {
      throw new Failure(
        400,
        invalidParamBody("Usernames or emails must be present"),
      );
    }
    if (found.length > 1000) {
      throw new Failure(422, {
        errors: ["Maximum 1000 users can be added at once"],
      });
    }
    const already = found.filter((user) => group.memberIds.has(user.id))
      .map((user) => user.username).sort();
    if (already.length === found.length) {
      throw new Failure(422, {
        errors: [
          already.length === 1
            ? `'${already[0]}' is already a member of this group.`
            : `The following users are already members of this group: ${
              already.join(", ")
            }`,
        ],
      });
    }
    const now = new Date().toISOString();
    const since = addedAt.get(group) ?? new Map<number, string>();
    addedAt.set(group, since);
    for (const user of found) {
      if (!group.memberIds.has(user.id)) since.set(user.id, now);
      group.memberIds.add(user.id);
    }
    return jsonResponse(200, {
      success: "OK",
      usernames: found.map((user) => user.username),
      emails: [],
    });
  };

  const removeMembers = (
    id: string,
    viewer: DiscourseScenarioUser,
    params: Params,
  ): Response => {
    const group = groupById(id);
    ensureCanEditGroup(group, viewer);
    // The singular names still work, for backwards compatibility.
    const normalized: Params = { ...params };
    if (typeof params.username === "string" && params.username.trim() !== "") {
      normalized.usernames = params.username;
    }
    if (
      typeof params.user_email === "string" && params.user_email.trim() !== ""
    ) {
      normalized.user_emails = params.user_email;
    }
    const found = usersFromParams(normalized);
    if (found.length === 0) {
      throw new Failure(
        400,
        invalidParamBody(
          "user_ids or usernames or user_emails must be present",
        ),
      );
    }
    const removed: string[] = [];
    const skipped: string[] = [];
    for (const user of found) {
      if (group.memberIds.delete(user.id)) {
        // Owners can be removed like anyone: protecting them is the caller's job.
        group.ownerIds.delete(user.id);
        addedAt.get(group)?.delete(user.id);
        removed.push(user.username);
      } else {
        skipped.push(user.username);
      }
    }
    return jsonResponse(200, {
      success: "OK",
      usernames: removed,
      skipped_usernames: skipped,
    });
  };

  const createGroup = (
    viewer: DiscourseScenarioUser,
    params: Params,
  ): Response => {
    if (viewer.admin !== true) throw new Failure(403, notPermittedBody);
    const fields = params.group;
    if (
      fields === null || typeof fields !== "object" || Array.isArray(fields)
    ) {
      throw new Failure(400, missingParamBody("group"));
    }
    const attributes = fields as Params;
    const name = (scalarParam(attributes, "name") ?? "").normalize("NFC")
      .trim();
    const errors: string[] = [];
    if (name === "") errors.push("Name can't be blank");
    else {
      const formatError = usernameFormatError(name, site);
      if (formatError) errors.push(`Name ${formatError}`);
      else if (usernameTaken(name)) errors.push("Name has already been taken");
    }
    const rawLevel = scalarParam(attributes, "visibility_level");
    const level = rawLevel === undefined || rawLevel === ""
      ? 0
      : /^\d+$/.test(rawLevel)
      ? Number(rawLevel)
      : Number.NaN;
    if (!(level >= 0 && level <= 4)) {
      errors.push("Visibility level is not included in the list");
    }
    if (errors.length > 0) throw new Failure(422, { errors });
    // Admin::GroupsController matches these lists case-sensitively.
    const exact = (list: string | undefined): number[] =>
      (list ?? "").split(",").flatMap((wanted) =>
        [...users.values()].filter((user) => user.username === wanted)
          .map((user) => user.id)
      );
    const owners = exact(scalarParam(attributes, "owner_usernames"));
    const members = exact(scalarParam(attributes, "usernames"));
    const group: FakeGroup = {
      id: nextGroupId(),
      name,
      full_name: scalarParam(attributes, "full_name"),
      visibility_level: level,
      bio_raw: scalarParam(attributes, "bio_raw"),
      automatic: false,
      memberIds: new Set([...owners, ...members]),
      ownerIds: new Set(owners),
      createdAt: new Date().toISOString(),
    };
    groups.set(group.id, group);
    addedAt.set(
      group,
      new Map([...group.memberIds].map((id) => [id, group.createdAt])),
    );
    return jsonResponse(200, { basic_group: basicGroup(group, viewer) });
  };

  // -------------------------------------------------------------------------
  // Suspensions (admin/users_controller.rb, services/user/suspend.rb)

  /** Admin::UsersController#fetch_user: runs before anything else. */
  const adminTarget = (id: string): DiscourseScenarioUser => {
    const user = /^\d+$/.test(id) ? users.get(Number(id)) : undefined;
    if (!user) throw new Failure(404, notFoundBody);
    return user;
  };

  /** ActiveModel's datetime cast: an unparseable value becomes nil. */
  const castDateTime = (raw: string | undefined): string | undefined => {
    if (raw === undefined) return undefined;
    const match =
      /^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?\s*$/
        .exec(raw);
    if (!match) return undefined;
    const [, year, month, day, hour, minute, second, zone] = match;
    const iso = `${year}-${month}-${day}T${hour ?? "00"}:${minute ?? "00"}:${
      second ?? "00"
    }${zone ?? "Z"}`;
    const time = Date.parse(iso);
    const date = new Date(time);
    // 2030-02-31 would roll over in JS; Ruby refuses it.
    if (
      Number.isNaN(time) ||
      (zone === undefined &&
        date.getUTCDate() !== Number(day))
    ) {
      return undefined;
    }
    return date.toISOString();
  };

  const suspend = (
    id: string,
    viewer: DiscourseScenarioUser,
    params: Params,
  ): Response => {
    const user = adminTarget(id);
    const reason = scalarParam(params, "reason");
    const until = castDateTime(scalarParam(params, "suspend_until"));
    const message = scalarParam(params, "message");
    const errors: string[] = [];
    if (reason === undefined || isBlank(reason)) {
      errors.push("Reason can't be blank");
    } else if (charLength(reason) > 300) {
      errors.push("Reason is too long (maximum is 300 characters)");
    }
    if (until === undefined) errors.push("Suspend until can't be blank");
    if (errors.length > 0) {
      throw new Failure(400, { failed: "FAILED", errors });
    }
    if (isSuspended(user)) {
      throw new Failure(409, {
        failed: "FAILED",
        message: `${viewer.username} already suspended this user ${
          user.suspended_at ?? createdAt(user)
        }`,
      });
    }
    // Guardian#can_suspend?: staff accounts are never suspended.
    if (isStaff(user)) throw new Failure(403, notPermittedBody);
    user.suspended_till = until;
    user.suspended_at = new Date().toISOString();
    user.suspend_reason = reason;
    const fullReason = isBlank(message) ? reason! : `${reason}\n\n${message}`;
    if (!isBlank(message)) {
      suspensionEmails.push({ username: user.username, message: message! });
    }
    return jsonResponse(200, {
      suspension: {
        suspend_reason: reason,
        full_suspend_reason: fullReason,
        suspended_till: user.suspended_till,
        suspended_at: user.suspended_at,
        suspended_by: {
          id: viewer.id,
          username: viewer.username,
          name: viewer.name ?? null,
          avatar_template: avatarTemplate(viewer),
        },
      },
    });
  };

  const unsuspend = (id: string): Response => {
    const user = adminTarget(id);
    if (isStaff(user)) throw new Failure(403, notPermittedBody);
    delete user.suspended_till;
    delete user.suspended_at;
    delete user.suspend_reason;
    return jsonResponse(200, {
      suspension: { suspended_till: null, suspended_at: null },
    });
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
    const found = [...new Set(ids)].flatMap((id) => {
      const user = users.get(id);
      return user ? [user] : [];
    })
      .filter((user) => user.active !== false || isStaff(viewer))
      .sort((a, b) => a.id - b.id)
      .map((user) => serializeCard(user, viewer));
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
    const fault = faults.take(
      call.path,
      (f) =>
        f.kind !== "moodle-exception" &&
        (f.kind !== "slow" || f.method === undefined ||
          f.method === call.method),
    );
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
            "externalId",
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
        case "groupShow":
          return showGroup(route.name, viewer);
        case "groupMembers":
          return groupMembers(route.name, viewer, call.query);
        case "groupAdd":
          return addMembers(route.id, viewer, await readParams(call));
        case "groupRemove":
          return removeMembers(route.id, viewer, await readParams(call));
        case "groupCreate":
          return createGroup(viewer, await readParams(call));
        case "suspend":
          return suspend(route.id, viewer, await readParams(call));
        case "unsuspend":
          return unsuspend(route.id);
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
    latencyMs: scenario.latencyMs,
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
    groups,
    groupByName,
    groupMembers: (name) => {
      const group = groupByName(name);
      return group ? membersOf(group).map((user) => user.username).sort() : [];
    },
    suspensionEmails,
    requestCount: server.requestCount,
    setLatency: server.setLatency,
    close: server.close,
  };
};
