// Shared machinery of the test doubles: a loopback HTTP server that records
// every request, a queue of injected faults and an O(1) sliding window.
//
// node:http is used instead of Deno.serve because a double must be able to
// drop a connection without answering: Deno.serve always flushes the status
// line first, so the client would see a 200 and then a broken body instead of
// the connection error a real network failure gives.
import http from "node:http";
import type { AddressInfo } from "node:net";

/** One request as the double received it. */
export interface RecordedRequest {
  method: string;
  /** The URL's pathname, still percent-encoded as sent. */
  path: string;
  query: URLSearchParams;
  headers: Headers;
  /** The body as text; "" when the double was told not to keep bodies. */
  body: string;
  /** `Date.now()` when the request arrived. */
  at: number;
}

export type Fault =
  | { kind: "429-json"; count: number; retryAfter?: number; path?: RegExp }
  | { kind: "429-text"; count: number; retryAfter?: number; path?: RegExp }
  | { kind: "5xx"; count: number; status?: number; path?: RegExp }
  | {
    kind: "slow";
    count: number;
    delayMs: number;
    path?: RegExp;
    /** Only requests of this method: hold a PUT open, not the GET before. */
    method?: string;
  }
  | { kind: "malformed-json"; count: number; path?: RegExp }
  | { kind: "drop-connection"; count: number; path?: RegExp }
  | {
    kind: "moodle-exception";
    count: number;
    errorcode: string;
    message?: string;
    path?: RegExp;
  }
  /** A hostile or misconfigured front: a redirect to `location`. */
  | {
    kind: "redirect";
    count: number;
    status: 301 | 302 | 303 | 307 | 308;
    location: string;
    path?: RegExp;
  }
  /** Any answer, as given: error bodies echoing secrets, control characters. */
  | {
    kind: "answer";
    count: number;
    status: number;
    body: string;
    contentType?: string;
    path?: RegExp;
  }
  /**
   * A body of `bytes` bytes, streamed without a Content-Length: `prefix`,
   * then `filler` repeated, then `suffix` (valid JSON if they make it so).
   * `sent` is filled in with the bytes the client let through before it
   * stopped reading.
   */
  | {
    kind: "huge-body";
    count: number;
    bytes: number;
    prefix?: string;
    filler?: string;
    suffix?: string;
    sent?: number;
    path?: RegExp;
  };

/** A request handed to a double's handler. */
export interface IncomingCall {
  readonly method: string;
  readonly url: URL;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Headers;
  readonly body: string;
  readonly remoteAddress: string;
  /** Aborted when the double closes: pending `slow` delays end early. */
  readonly signal: AbortSignal;
}

/** Answer with this to close the socket without sending anything. */
export const DropConnection: unique symbol = Symbol("DropConnection");

/** An answer written chunk by chunk, as long as the client keeps reading. */
export class StreamedAnswer {
  constructor(
    readonly status: number,
    readonly headers: Record<string, string>,
    readonly chunks: () => Iterable<Uint8Array>,
    /** Told how many bytes went out once writing stops. */
    readonly onDone: (sent: number) => void,
  ) {}
}

export type Answer = Response | typeof DropConnection | StreamedAnswer;

const writeStreamed = async (
  answer: StreamedAnswer,
  out: http.ServerResponse,
): Promise<void> => {
  out.statusCode = answer.status;
  for (const [name, value] of Object.entries(answer.headers)) {
    out.setHeader(name, value);
  }
  let sent = 0;
  let closed = false;
  out.on("close", () => {
    closed = true;
  });
  for (const chunk of answer.chunks()) {
    if (closed || out.destroyed) break;
    sent += chunk.byteLength;
    if (!out.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          out.off("drain", done);
          out.off("close", done);
          resolve();
        };
        out.on("drain", done);
        out.on("close", done);
      });
    }
  }
  if (!closed && !out.destroyed) out.end();
  answer.onDone(sent);
};

export interface RecordingOptions {
  /** Keep request bodies in `requests` (default true). */
  recordBodies?: boolean;
  /** Keep `requests` at all (default true); counters run regardless. */
  recordRequests?: boolean;
  /**
   * Milliseconds every request waits before the double handles it, as a
   * real server's processing and network time (default 0). Throughput
   * depends on it: with a fixed number of requests in flight a client
   * reaches at most `inFlight / latency` requests per millisecond.
   */
  latencyMs?: number;
}

export interface HttpDoubleOptions extends RecordingOptions {
  /** 0 or absent: an ephemeral port. */
  port?: number;
  handle: (call: IncomingCall) => Promise<Answer>;
}

export interface HttpDouble {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  readonly origin: string;
  readonly requests: RecordedRequest[];
  requestCount(): number;
  /** Changes the answer latency for the requests that arrive from now on. */
  setLatency(ms: number): void;
  close(): Promise<void>;
}

const checkedLatency = (ms: number): number => {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new RangeError(
      `latencyMs must be a finite number >= 0, got ${String(ms)}`,
    );
  }
  return ms;
};

const toHeaders = (raw: http.IncomingHttpHeaders): Headers => {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      headers.append(name, item);
    }
  }
  return headers;
};

const readBody = async (request: http.IncomingMessage): Promise<string> => {
  const chunks: Uint8Array[] = [];
  for await (const chunk of request) chunks.push(chunk as Uint8Array);
  if (chunks.length === 0) return "";
  const total = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  const all = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
};

const writeAnswer = async (
  response: Response,
  out: http.ServerResponse,
): Promise<void> => {
  const body = response.body === null
    ? undefined
    : new Uint8Array(await response.arrayBuffer());
  out.statusCode = response.status;
  response.headers.forEach((value, name) => out.setHeader(name, value));
  out.setHeader("content-length", String(body?.byteLength ?? 0));
  out.end(body);
};

/** Starts a recording HTTP server on 127.0.0.1. */
export const startHttpDouble = async (
  options: HttpDoubleOptions,
): Promise<HttpDouble> => {
  const requests: RecordedRequest[] = [];
  const recordBodies = options.recordBodies ?? true;
  const recordRequests = options.recordRequests ?? true;
  let latencyMs = checkedLatency(options.latencyMs ?? 0);
  let count = 0;
  // Deno's fetch (hyper) silently resends a request once when a reused
  // keep-alive connection closes without an answer. A drop must reach the
  // client as a connection error, so that automatic resend is dropped too.
  const requestsPerSocket = new WeakMap<object, number>();
  let resends: Array<
    { method: string; url: string; body: string; until: number }
  > = [];
  const isAutomaticResend = (method: string, url: string, body: string) => {
    const now = Date.now();
    resends = resends.filter((resend) => resend.until > now);
    const index = resends.findIndex((resend) =>
      resend.method === method && resend.url === url && resend.body === body
    );
    if (index === -1) return false;
    resends.splice(index, 1);
    return true;
  };

  const closed = new AbortController();
  const server = http.createServer((incoming, outgoing) => {
    // A client that gives up (timeout, abort) must not crash the double.
    outgoing.on("error", () => {});
    incoming.on("error", () => {});
    void (async () => {
      const socket = incoming.socket;
      const served = requestsPerSocket.get(socket) ?? 0;
      requestsPerSocket.set(socket, served + 1);
      const body = await readBody(incoming);
      const url = new URL(incoming.url ?? "/", "http://127.0.0.1");
      const headers = toHeaders(incoming.headers);
      const method = (incoming.method ?? "GET").toUpperCase();
      count++;
      if (recordRequests) {
        // Shared with the handler, which only reads them: no copies per request.
        requests.push({
          method,
          path: url.pathname,
          query: url.searchParams,
          headers,
          body: recordBodies ? body : "",
          at: Date.now(),
        });
      }
      if (served === 0 && isAutomaticResend(method, url.href, body)) {
        socket.destroy();
        return;
      }
      if (latencyMs > 0) await sleep(latencyMs, closed.signal);
      const answer = await options.handle({
        method,
        url,
        path: url.pathname,
        query: url.searchParams,
        headers,
        body,
        remoteAddress: incoming.socket.remoteAddress ?? "127.0.0.1",
        signal: closed.signal,
      });
      if (answer === DropConnection) {
        if (served > 0) {
          resends.push({
            method,
            url: url.href,
            body,
            until: Date.now() + 2000,
          });
        }
        socket.destroy();
        return;
      }
      if (outgoing.destroyed) return;
      if (answer instanceof StreamedAnswer) {
        await writeStreamed(answer, outgoing);
        return;
      }
      await writeAnswer(answer, outgoing);
    })().catch((error: unknown) => {
      if (outgoing.headersSent || outgoing.destroyed) return;
      outgoing.statusCode = 500;
      outgoing.setHeader("content-type", "text/plain; charset=utf-8");
      outgoing.end(`test double crashed: ${String(error)}`);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;

  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    requestCount: () => count,
    setLatency: (ms) => {
      latencyMs = checkedLatency(ms);
    },
    close: () => {
      // Idempotent: a second close (two signals, a test's finally) is a no-op.
      closed.abort();
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // Idle keep-alive sockets would otherwise hold close() open.
        server.closeAllConnections();
      });
      return closing;
    },
  };
};

/**
 * Faults waiting to be applied, in the order they were injected: the first
 * one whose `path` matches a request answers it, `count` times.
 */
export class FaultQueue {
  readonly #pending: Array<{ fault: Fault; left: number }> = [];

  inject(fault: Fault): void {
    if (fault.count > 0) this.#pending.push({ fault, left: fault.count });
  }

  take(path: string, accepts: (fault: Fault) => boolean = () => true):
    | Fault
    | undefined {
    for (let index = 0; index < this.#pending.length; index++) {
      const entry = this.#pending[index];
      const pattern = entry.fault.path;
      if (pattern) pattern.lastIndex = 0;
      if (pattern && !pattern.test(path)) continue;
      if (!accepts(entry.fault)) continue;
      entry.left--;
      if (entry.left === 0) this.#pending.splice(index, 1);
      return entry.fault;
    }
    return undefined;
  }

  get size(): number {
    return this.#pending.length;
  }
}

/**
 * A sliding-window rate limiter: at most `limit` admissions in any
 * `windowMs`. Only the last `limit` admissions matter, so they live in a ring
 * and every operation is O(1) amortised however long the run.
 */
export class SlidingWindow {
  // Grows on demand, so a limit raised to millions costs no memory up front.
  #stamps: Float64Array;
  #head = 0;
  #size = 0;

  constructor(readonly limit: number, readonly windowMs: number) {
    this.#stamps = new Float64Array(
      Number.isFinite(limit)
        ? Math.max(1, Math.min(Math.floor(limit), 1024))
        : 1,
    );
  }

  get unlimited(): boolean {
    return !Number.isFinite(this.limit);
  }

  #evict(now: number): void {
    const capacity = this.#stamps.length;
    while (this.#size > 0 && now - this.#stamps[this.#head] >= this.windowMs) {
      this.#head = (this.#head + 1) % capacity;
      this.#size--;
    }
  }

  #push(now: number): void {
    if (this.#size === this.#stamps.length) {
      const grown = new Float64Array(
        Math.min(Math.floor(this.limit), this.#stamps.length * 2),
      );
      for (let index = 0; index < this.#size; index++) {
        grown[index] = this.#stamps[(this.#head + index) % this.#stamps.length];
      }
      this.#stamps = grown;
      this.#head = 0;
    }
    this.#stamps[(this.#head + this.#size) % this.#stamps.length] = now;
    this.#size++;
  }

  /** Milliseconds until a slot frees up; 0 when one is free now. */
  waitMs(now: number): number {
    if (this.unlimited) return 0;
    if (this.limit < 1) return this.windowMs;
    this.#evict(now);
    if (this.#size < this.limit) return 0;
    return Math.max(1, this.#stamps[this.#head] + this.windowMs - now);
  }

  /** Takes a slot if one is free: 0. Otherwise nothing changes: the wait. */
  tryAcquire(now: number): number {
    const wait = this.waitMs(now);
    if (wait === 0 && !this.unlimited) this.#push(now);
    return wait;
  }

  /** Takes up to `n` slots now; returns how many were free. */
  spend(n: number, now: number): number {
    let taken = 0;
    while (taken < n && this.tryAcquire(now) === 0 && !this.unlimited) taken++;
    return this.unlimited ? n : taken;
  }

  /** Admissions still inside the window. */
  used(now: number): number {
    if (this.unlimited) return 0;
    this.#evict(now);
    return this.#size;
  }
}

/** Seconds a `Retry-After` announces for a wait: rounded up, at least 1. */
export const retryAfterSeconds = (waitMs: number): number =>
  Math.max(1, Math.ceil(waitMs / 1000));

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

export const jsonResponse = (
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export const htmlResponse = (
  status: number,
  title: string,
  text = title,
  headers: Record<string, string> = {},
): Response =>
  new Response(
    `<!DOCTYPE html>\n<html><head><title>${escapeHtml(title)}</title></head>` +
      `<body><h1>${escapeHtml(title)}</h1><p>${
        escapeHtml(text)
      }</p></body></html>\n`,
    {
      status,
      headers: { "content-type": "text/html; charset=utf-8", ...headers },
    },
  );

const reasonPhrases: Record<number, string> = {
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** What a reverse proxy in front of the application answers on a 5xx. */
export const proxyErrorPage = (status: number): Response => {
  const reason = reasonPhrases[status] ?? "Server Error";
  return new Response(
    `<html>\r\n<head><title>${status} ${reason}</title></head>\r\n<body>\r\n` +
      `<center><h1>${status} ${reason}</h1></center>\r\n` +
      `<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`,
    { status, headers: { "content-type": "text/html" } },
  );
};

/**
 * Applies the faults both doubles share. Returns the answer, or undefined
 * when the request must go on to normal processing (after a `slow` delay).
 */
export const applySharedFault = async (
  fault: Fault,
  specific: {
    rateLimitJson: (waitSeconds: number) => Response;
    rateLimitText: (waitSeconds: number) => Response;
    truncatedJson: string;
  },
  signal?: AbortSignal,
): Promise<Answer | undefined> => {
  switch (fault.kind) {
    case "429-json":
      return specific.rateLimitJson(fault.retryAfter ?? 1);
    case "429-text":
      return specific.rateLimitText(fault.retryAfter ?? 1);
    case "5xx":
      return proxyErrorPage(fault.status ?? 502);
    case "slow":
      await sleep(fault.delayMs, signal);
      return undefined;
    case "malformed-json":
      return new Response(specific.truncatedJson, {
        status: 200,
        headers: { "content-type": "application/json; charset=utf-8" },
      });
    case "drop-connection":
      return DropConnection;
    case "moodle-exception":
      return undefined;
    case "redirect":
      return new Response(null, {
        status: fault.status,
        headers: { location: fault.location },
      });
    case "answer":
      return new Response(fault.body, {
        status: fault.status,
        headers: {
          "content-type": fault.contentType ??
            "application/json; charset=utf-8",
        },
      });
    case "huge-body":
      return hugeBody(fault);
  }
};

const hugeBody = (
  fault: Extract<Fault, { kind: "huge-body" }>,
): StreamedAnswer => {
  const encoder = new TextEncoder();
  const prefix = encoder.encode(fault.prefix ?? "");
  const suffix = encoder.encode(fault.suffix ?? "");
  const block = encoder.encode((fault.filler ?? "x").repeat(64 * 1024));
  return new StreamedAnswer(
    200,
    { "content-type": "application/json; charset=utf-8" },
    function* () {
      yield prefix;
      let left = fault.bytes - prefix.byteLength - suffix.byteLength;
      while (left > 0) {
        const chunk = left >= block.byteLength
          ? block
          : block.subarray(0, left);
        left -= chunk.byteLength;
        yield chunk;
      }
      yield suffix;
    },
    (sent) => {
      fault.sent = (fault.sent ?? 0) + sent;
    },
  );
};

/** A nested value of a PHP/Rack bracket-syntax form: `a[0][b]=c`. */
export type FormValue = string | Map<string, FormValue>;
export type FormMap = Map<string, FormValue>;

const splitBracketKey = (key: string): string[] => {
  const open = key.indexOf("[");
  if (open <= 0) return [key];
  const parts = [key.slice(0, open)];
  const rest = key.slice(open);
  const pattern = /\[([^\]]*)\]/gy;
  let match: RegExpExecArray | null;
  let consumed = 0;
  while ((match = pattern.exec(rest)) !== null) {
    parts.push(match[1]);
    consumed = pattern.lastIndex;
  }
  // Trailing junk after the brackets is ignored, as PHP does.
  if (consumed === 0) return [key];
  return parts;
};

/**
 * Parses `application/x-www-form-urlencoded` pairs the way PHP builds
 * `$_POST`: `criteria[0][key]=id` nests, `values[]=x` appends, insertion
 * order is kept and a later plain value overwrites an earlier one.
 */
export const parseBracketForm = (pairs: URLSearchParams): FormMap => {
  const root: FormMap = new Map();
  for (const [key, value] of pairs) {
    const parts = splitBracketKey(key);
    let node: FormMap = root;
    for (let index = 0; index < parts.length; index++) {
      let part = parts[index];
      const last = index === parts.length - 1;
      if (part === "" && index > 0) {
        let next = 0;
        for (const existing of node.keys()) {
          const n = Number(existing);
          if (Number.isInteger(n) && n >= next) next = n + 1;
        }
        part = String(next);
      }
      if (last) {
        node.set(part, value);
      } else {
        const child = node.get(part);
        if (child instanceof Map) {
          node = child;
        } else {
          const created: FormMap = new Map();
          node.set(part, created);
          node = created;
        }
      }
    }
  }
  return root;
};

/** A bracket form as plain JSON-like data (maps become objects). */
export const formToPlain = (value: FormValue): unknown => {
  if (typeof value === "string") return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of value) out[key] = formToPlain(child);
  return out;
};

/**
 * A case-insensitive SQL LIKE (Moodle's sql_like, Postgres' ILIKE): `%` and
 * `_` are wildcards, `\` escapes the next character.
 */
export const likePattern = (pattern: string): RegExp => {
  let source = "";
  for (let index = 0; index < pattern.length; index++) {
    const char = pattern[index];
    if (char === "\\" && index + 1 < pattern.length) {
      source += pattern[++index].replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    } else if (char === "%") source += "[\\s\\S]*";
    else if (char === "_") source += "[\\s\\S]";
    else source += char.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${source}$`, "iu");
};
