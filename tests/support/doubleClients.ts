// Clients for the tests that pin the doubles' behaviour: they start a
// double and call it as a real client would; the tests judge the answers.
import assert from "node:assert/strict";
import { type FakeMoodle, startFakeMoodle } from "../doubles/fakeMoodle.ts";
import {
  type FakeDiscourse,
  startFakeDiscourse,
} from "../doubles/fakeDiscourse.ts";

/** Runs `body` against a double started for it, closed whatever happens. */
const withDouble = <Scenario, Double extends { close(): Promise<void> }>(
  start: (scenario: Scenario) => Promise<Double>,
) =>
async (
  scenario: Scenario,
  body: (double: Double) => Promise<void>,
): Promise<void> => {
  const double = await start(scenario);
  try {
    await body(double);
  } finally {
    await double.close();
  }
};

export const withMoodle = withDouble(startFakeMoodle);
export const withDiscourse = withDouble(startFakeDiscourse);

export const callMoodle = async (
  moodle: FakeMoodle,
  params: Record<string, string>,
  options: { token?: string | null; json?: boolean; headers?: HeadersInit } =
    {},
) => {
  const form = new URLSearchParams();
  if (options.token !== null) {
    form.set("wstoken", options.token ?? moodle.token);
  }
  if (options.json !== false) form.set("moodlewsrestformat", "json");
  for (const [key, value] of Object.entries(params)) form.append(key, value);
  const response = await fetch(moodle.endpoint, {
    method: "POST",
    body: form,
    headers: options.headers,
  });
  const text = await response.text();
  return {
    status: response.status,
    text,
    type: response.headers.get("content-type") ?? "",
  };
};

export const moodleJson = async (
  moodle: FakeMoodle,
  params: Record<string, string>,
  options: { token?: string | null; headers?: HeadersInit } = {},
  // deno-lint-ignore no-explicit-any
): Promise<any> => {
  const { status, text } = await callMoodle(moodle, params, options);
  assert.equal(status, 200);
  return JSON.parse(text);
};

export interface ApiOptions {
  method?: string;
  json?: unknown;
  form?: Record<string, string>;
  auth?: { key: string; user: string } | false;
  accept?: string | false;
}

export const api = async (
  discourse: FakeDiscourse,
  path: string,
  options: ApiOptions = {},
) => {
  const headers = new Headers();
  if (options.accept !== false) {
    headers.set("Accept", options.accept ?? "application/json");
  }
  const auth = options.auth ??
    { key: discourse.apiKey, user: discourse.apiUser };
  if (auth) {
    headers.set("api-key", auth.key);
    headers.set("API-USERNAME", auth.user);
  }
  let body: BodyInit | undefined;
  if (options.json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(options.json);
  } else if (options.form) {
    body = new URLSearchParams(options.form);
  }
  const response = await fetch(`${discourse.url}${path}`, {
    method: options.method ?? "GET",
    headers,
    body,
  });
  const text = await response.text();
  return {
    status: response.status,
    text,
    headers: response.headers,
    // deno-lint-ignore no-explicit-any
    json: (): any => JSON.parse(text),
  };
};

export const invalidCredentials = {
  errors: [
    "You do not have permission to view the requested resource. The API username or key is invalid.",
  ],
  error_type: "invalid_access",
};
export const notFound = {
  errors: ["The requested URL or resource could not be found."],
  error_type: "not_found",
};
