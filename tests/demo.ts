/**
 * `deno task demo`: the tool against the test doubles, no servers or settings
 * of your own. Starts a fake Moodle and a fake Discourse seeded with about 25
 * users covering every case, runs a dry-run, and says where the log is.
 * Extra arguments go to the CLI: `deno task demo --apply`.
 */
import { startFakeMoodle } from "./doubles/fakeMoodle.ts";
import { startFakeDiscourse } from "./doubles/fakeDiscourse.ts";
import { demoScenario } from "./doubles/scenarios.ts";
import { cliArgs } from "./support/cli.ts";

const scenario = demoScenario();
// The doubles enforce Discourse's limits; the demo raises them to be quick.
scenario.discourse.rateLimit = {
  ...scenario.discourse.rateLimit,
  adminPerMinute: 600,
  ipPer10Seconds: 600,
  ipPerMinute: 1200,
};
const moodle = await startFakeMoodle(scenario.moodle);
const discourse = await startFakeDiscourse(scenario.discourse);
const workDir = "demo-output";
await Deno.mkdir(workDir, { recursive: true });
const settingsPath = `${workDir}/settings.json`;
await Deno.writeTextFile(
  settingsPath,
  JSON.stringify(
    {
      env: "demo",
      moodle: { endpoint: moodle.endpoint, token: moodle.token },
      discourse: {
        url: discourse.url,
        apiKey: discourse.apiKey,
        apiUser: discourse.apiUser,
        requestsPerMinute: 600,
      },
      batchSize: 0,
      logDir: workDir,
      exclude: { usernames: ["test*"] },
    },
    null,
    2,
  ),
);
await Deno.chmod(settingsPath, 0o600);

const args = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;
console.error(
  `Fake Moodle:    ${moodle.endpoint}\nFake Discourse: ${discourse.url}\n` +
    `Running: sync-moodle-discourse --settings ${settingsPath} ${
      args.join(" ")
    }\n`,
);
const child = new Deno.Command(Deno.execPath(), {
  args: cliArgs(["--settings", settingsPath, ...args]),
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
const { code } = await child.status;
await moodle.close();
await discourse.close();
console.error(
  `\nThe CSV audit log and the settings the demo used are in ./${workDir}/.` +
    `\nTry: deno task demo --apply   (writes to the fake forum)` +
    `\n     deno task demo --json    (one JSON object per user)`,
);
Deno.exit(code);
