// `deno task fakes`: serves the fake Moodle and the fake Discourse on the
// demo scenario until Ctrl-C, so the tool can be run against them by hand.
//
//   deno task fakes [--rate-limit N] [--window-ms MS] [--latency-ms MS]
//   FAKE_MOODLE_PORT=8081 FAKE_DISCOURSE_PORT=8082 deno task fakes
import { startFakeMoodle } from "./fakeMoodle.ts";
import { startFakeDiscourse } from "./fakeDiscourse.ts";
import { demoCredentials, demoScenario } from "./scenarios.ts";

const usage =
  "usage: deno task fakes [--rate-limit N] [--window-ms MS] [--latency-ms MS]\n" +
  "  --rate-limit N   admin API requests allowed per window (default 60)\n" +
  "  --window-ms MS   length of the rate-limit window (default 60000)\n" +
  "  --latency-ms MS  extra time before every answer, both doubles (default 0)\n" +
  "  env FAKE_MOODLE_PORT / FAKE_DISCOURSE_PORT pick fixed ports";

const positiveInt = (flag: string, raw: string | undefined): number => {
  const value = Number(raw);
  if (raw === undefined || !Number.isInteger(value) || value < 1) {
    console.error(
      `${flag} needs a positive whole number, got ${
        raw ?? "nothing"
      }\n${usage}`,
    );
    Deno.exit(2);
  }
  return value;
};

const parseArgs = (args: ReadonlyArray<string>) => {
  let rateLimit: number | undefined;
  let windowMs: number | undefined;
  let latencyMs: number | undefined;
  for (let index = 0; index < args.length; index++) {
    const [flag, inline] = args[index].split("=", 2);
    const value = () => inline ?? args[++index];
    switch (flag) {
      case "--rate-limit":
        rateLimit = positiveInt(flag, value());
        break;
      case "--window-ms":
        windowMs = positiveInt(flag, value());
        break;
      case "--latency-ms":
        latencyMs = positiveInt(flag, value());
        break;
      case "--help":
      case "-h":
        console.log(usage);
        Deno.exit(0);
        break;
      default:
        console.error(`unknown argument ${args[index]}\n${usage}`);
        Deno.exit(2);
    }
  }
  return { rateLimit, windowMs, latencyMs };
};

const portFromEnv = (name: string): number => {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return 0;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`${name} must be a TCP port (0-65535), got ${raw}`);
    Deno.exit(2);
  }
  return port;
};

const { rateLimit, windowMs, latencyMs } = parseArgs(Deno.args);
const adminPerMinute = rateLimit ?? 60;
// A raised admin limit would otherwise hit the per-IP limits first.
const ipPerMinute = Math.max(200, adminPerMinute * 2);
const ipPer10Seconds = Math.max(50, Math.ceil(ipPerMinute / 4));

const scenario = demoScenario();
const moodle = await startFakeMoodle({
  ...scenario.moodle,
  port: portFromEnv("FAKE_MOODLE_PORT"),
  latencyMs,
});
const discourse = await startFakeDiscourse({
  ...scenario.discourse,
  port: portFromEnv("FAKE_DISCOURSE_PORT"),
  latencyMs,
  rateLimit: { adminPerMinute, ipPerMinute, ipPer10Seconds, windowMs },
});

const cohorts = (scenario.moodle.cohorts ?? []).map((cohort) =>
  `cohort ${cohort.idnumber} (${cohort.members.length} members)`
);
const courses = (scenario.moodle.courses ?? []).map((course) =>
  `course ${course.shortname} (${course.enrolments.length} enrolments)`
);
const groups = (scenario.discourse.groups ?? []).map((group) =>
  `${group.name} (${discourse.groupMembers(group.name).length} members)`
);

console.log(`Fake Moodle:    ${moodle.endpoint}
  token: ${demoCredentials.moodleToken}
  ${scenario.moodle.users.length} users (guest included); ${
  [...cohorts, ...courses].join(", ")
}
Fake Discourse: ${discourse.url}
  api key: ${demoCredentials.discourseApiKey}  api user: ${demoCredentials.discourseApiUser}
  ${discourse.users.size} users; groups ${groups.join(", ")}
  admin limit ${adminPerMinute} per ${
  windowMs ?? 60_000
} ms, per IP ${ipPer10Seconds}/10 s and ${ipPerMinute}/min${
  latencyMs ? `\nBoth answer ${latencyMs} ms late.` : ""
}

To run the tool against them:
export MOODLE_ENDPOINT=${moodle.endpoint}
export MOODLE_TOKEN=${demoCredentials.moodleToken}
export DISCOURSE_URL=${discourse.url}
export DISCOURSE_API_KEY=${demoCredentials.discourseApiKey}
export DISCOURSE_API_USER=${demoCredentials.discourseApiUser}

Ctrl-C stops them.`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await Promise.all([moodle.close(), discourse.close()]);
  console.log(
    `\nStopped. Moodle got ${moodle.requestCount()} requests, Discourse ${discourse.requestCount()} ` +
      `(${discourse.rateLimited429s()} admin 429s, ${discourse.emailChangeRequests.length} email change requests).`,
  );
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", () => void stop());
if (Deno.build.os !== "windows") {
  Deno.addSignalListener("SIGTERM", () => void stop());
}
