import assert from "node:assert/strict";
import { denoRunFlags } from "../../src/permissions.ts";
import { cliEnv, writeSettings } from "../support/world.ts";

const root = new URL("../..", import.meta.url).pathname;
const mainModule = `${root}src/main.ts`;
const decoder = new TextDecoder();

/**
 * A command in a pseudo-terminal (`script`), where Deno would ask for a
 * missing permission and wait: a prompt shows up as its text, or as a run
 * the watchdog has to kill.
 */
const inTerminal = async (command: string, cwd = root) => {
  const child = new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    cwd,
    env: { ...cliEnv(), TERM: "xterm" },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let killed = false;
  const watchdog = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, 60_000);
  // An open terminal that sends nothing: what a person who walked away does.
  const keys = child.stdin.getWriter();
  const output = await child.output();
  clearTimeout(watchdog);
  await keys.close().catch(() => {});
  return {
    code: output.code,
    killed,
    screen: decoder.decode(output.stdout) + decoder.decode(output.stderr),
  };
};

const promptText = /requests? \w+ access|Allow\? \[y\/n/;

Deno.test("nothing the CLI loads asks for FFI: a terminal run without --no-prompt starts and exits", async () => {
  // The operator's line without the guard flags: only what the code loads
  // decides whether Deno asks. @effect/platform's index (msgpackr) did.
  const run = await inTerminal(
    `${Deno.execPath()} run --allow-net --allow-read --allow-write --allow-env --allow-sys ${mainModule} --version`,
  );
  assert.equal(run.killed, false, run.screen);
  assert.doesNotMatch(run.screen, promptText);
  assert.equal(run.code, 0, run.screen);
  assert.match(run.screen, /\d+\.\d+\.\d+/);
});

Deno.test("deno task sync in a terminal never stops at a prompt", async () => {
  const run = await inTerminal(`${Deno.execPath()} task sync --help`);
  assert.equal(run.killed, false, run.screen);
  assert.doesNotMatch(run.screen, promptText);
  assert.equal(run.code, 0, run.screen);
});

Deno.test("every task that runs code, and the bundle line README gives, refuses to prompt and to load native code", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${root}deno.json`));
  const commands = Object.values(config.tasks as Record<string, string>)
    .flatMap((task) => task.split("&&").map((part) => part.trim()))
    .filter((part) => /^deno (run|test|compile)\b/.test(part));
  assert.ok(commands.length >= 6, commands.join("\n"));
  for (const command of commands) {
    for (const flag of ["--no-prompt", "--deny-ffi"]) {
      assert.ok(command.includes(` ${flag} `), `${command} lacks ${flag}`);
    }
  }
  const readme = await Deno.readTextFile(`${root}README.md`);
  const bundleLine = readme.split("\n").find((line) =>
    /deno run .*dist\/sync-moodle-discourse\.js/.test(line)
  );
  assert.ok(bundleLine, "README gives no deno run line for the bundle");
  for (const flag of denoRunFlags) {
    assert.ok(bundleLine.includes(flag), `${bundleLine} lacks ${flag}`);
  }
});

/** src/main.ts with only these permissions, in `cwd`, as a bundle is run. */
const runWith = async (
  permissions: ReadonlyArray<string>,
  cwd: string,
  flags: ReadonlyArray<string> = [],
) => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...permissions, mainModule, ...flags],
    cwd,
    env: cliEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
};

Deno.test("a permission Deno did not grant is named with its --allow flag, not blamed on the file or the network", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sync-permissions-" });
  try {
    await writeSettings(dir, {
      // Nothing listens there: the permission must fail first.
      moodle: { endpoint: "http://127.0.0.1:2", token: "token-1234" },
      discourse: { url: "http://127.0.0.1:2", apiKey: "key-1234" },
      logDir: dir,
      lockDir: dir,
    });
    const cases: ReadonlyArray<{
      readonly given: ReadonlyArray<string>;
      readonly needs: string;
      readonly what: RegExp;
      readonly flags?: ReadonlyArray<string>;
    }> = [
      { given: [], needs: "--allow-read", what: /settings\.json/ },
      { given: ["--allow-read"], needs: "--allow-env", what: /env access/ },
      {
        // The forum lock names its holder's user and host.
        given: ["--allow-read", "--allow-env", "--allow-write", "--allow-net"],
        needs: "--allow-sys",
        what: /sys access/,
        flags: ["--apply"],
      },
      {
        given: ["--allow-read", "--allow-env", "--allow-write", "--allow-sys"],
        needs: "--allow-net",
        what: /net access to "127\.0\.0\.1:2"/,
      },
    ];
    for (const { given, needs, what, flags } of cases) {
      const result = await runWith(given, dir, flags);
      const said = `${given.join(" ") || "no flags"}:\n${result.stderr}`;
      assert.equal(result.code, 2, said);
      assert.match(result.stderr, /Deno did not grant this run a permission/);
      assert.ok(result.stderr.includes(`add ${needs}`), said);
      assert.match(result.stderr, what, said);
      assert.doesNotMatch(result.stderr, /check its permissions|Unknown/);
      assert.doesNotMatch(result.stderr, /NotCapable|\n\s+at /, said);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an operator's settings files are kept out of git, fmt and lint; the example is not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sync-ignore-" });
  try {
    await Deno.copyFile(`${root}deno.json`, `${dir}/deno.json`);
    await Deno.copyFile(`${root}.gitignore`, `${dir}/.gitignore`);
    const badlyFormatted = '{"moodle":{ "token" :"x"},\n    "env":"prod"}\n';
    for (
      const name of [
        "settings.json",
        "settings.prod.json",
        "settings.example.json",
      ]
    ) await Deno.writeTextFile(`${dir}/${name}`, badlyFormatted);
    const run = async (command: string, args: ReadonlyArray<string>) => {
      const output = await new Deno.Command(command, {
        args: [...args],
        cwd: dir,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return decoder.decode(output.stdout) + decoder.decode(output.stderr);
    };
    const fmt = await run(Deno.execPath(), ["fmt", "--check"]);
    assert.match(fmt, /settings\.example\.json/);
    assert.doesNotMatch(fmt, /settings\.json|settings\.prod\.json/);
    assert.match(fmt, /Found 1 not formatted file/);

    await run("git", ["init", "-q"]);
    const ignored = await run("git", [
      "check-ignore",
      "settings.json",
      "settings.prod.json",
      "settings.example.json",
    ]);
    assert.deepEqual(ignored.trim().split("\n").sort(), [
      "settings.json",
      "settings.prod.json",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
