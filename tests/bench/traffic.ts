// Counts what reached the doubles, from their own request logs. The logs are
// drained as the run goes, so 100,000 requests never pile up in memory.
import type { RecordedRequest } from "../doubles/http.ts";

export interface DiscourseTraffic {
  total: number;
  profileReads: number;
  emailReads: number;
  adminPages: number;
  profileWrites: number;
  emailWrites: number;
  /** Group and group member reads, and membership writes and creations. */
  groupReads: number;
  groupWrites: number;
  other: number;
  /** Profile reads of a user after this run wrote that user's profile. */
  rereads: number;
  /** Arrival times (ms) of the first and last request. */
  firstAt: number | undefined;
  lastAt: number | undefined;
}

export const emptyTraffic = (): DiscourseTraffic => ({
  total: 0,
  profileReads: 0,
  emailReads: 0,
  adminPages: 0,
  profileWrites: 0,
  emailWrites: 0,
  groupReads: 0,
  groupWrites: 0,
  other: 0,
  rereads: 0,
  firstAt: undefined,
  lastAt: undefined,
});

const profilePath = /^\/u\/([^/]+)\.json$/;
const emailsPath = /^\/u\/[^/]+\/emails\.json$/;
const emailChangePath = /^\/u\/[^/]+\/preferences\/email\.json$/;

/** Folds Discourse requests into `traffic`; `written` tracks profile PUTs. */
export const countDiscourse = (
  traffic: DiscourseTraffic,
  requests: ReadonlyArray<RecordedRequest>,
  written: Set<string>,
): void => {
  for (const request of requests) {
    traffic.total++;
    traffic.firstAt ??= request.at;
    traffic.lastAt = request.at;
    const profile = profilePath.exec(request.path);
    if (/^\/(admin\/)?groups\//.test(request.path)) {
      if (request.method === "GET") traffic.groupReads++;
      else traffic.groupWrites++;
    } else if (request.method === "GET" && profile) {
      traffic.profileReads++;
      if (written.has(decodeURIComponent(profile[1]).toLowerCase())) {
        traffic.rereads++;
      }
    } else if (request.method === "PUT" && profile) {
      traffic.profileWrites++;
      written.add(decodeURIComponent(profile[1]).toLowerCase());
    } else if (request.method === "GET" && emailsPath.test(request.path)) {
      traffic.emailReads++;
    } else if (request.method === "GET" && request.path.startsWith("/admin/")) {
      traffic.adminPages++;
    } else if (request.method === "PUT" && emailChangePath.test(request.path)) {
      traffic.emailWrites++;
    } else {
      traffic.other++;
    }
  }
};

/**
 * Drains `requests` (a double's live log) every `everyMs` into `fold`, and
 * once more on `stop`, so the log stays short however long the run.
 */
export const drainPeriodically = (
  requests: RecordedRequest[],
  fold: (batch: ReadonlyArray<RecordedRequest>) => void,
  everyMs = 200,
): { stop: () => void } => {
  const drain = () => fold(requests.splice(0, requests.length));
  const timer = setInterval(drain, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      drain();
    },
  };
};
