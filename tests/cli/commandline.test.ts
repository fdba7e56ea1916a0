import assert from "node:assert/strict";
import { revertFlags, syncFlags } from "../../src/cli/args.ts";
import { cliArgs, cliEnv, runCli } from "../support/world.ts";

const root = new URL("../..", import.meta.url).pathname;

Deno.test("a mistyped, unknown or incomplete flag is named, with the flag meant, and exits 2", async () => {
  const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
    [["--aply"], /unknown flag --aply: did you mean --apply\?/],
    [["--users", "ana"], /unknown flag --users: did you mean --user\?/],
    [["--batchsize", "5"], /did you mean --batch-size\?/],
    [["--force"], /did you mean --force-recreate\?/],
    [["--dry-run"], /--dry-run: every run is a dry-run unless --apply/],
    [["--wizard"], /unknown flag --wizard/],
    [["--user"], /--user needs a value: --user USERNAME/],
    [["--user", "--apply"], /--user needs a value/],
    [["--batch-size", "many"], /--batch-size needs a whole number, not "many"/],
    [["--apply=yes"], /--apply takes no value/],
    [["rever", "x.csv"], /unknown command "rever": did you mean revert\?/],
    [["revert"], /revert needs the audit log .*revert LOG\.csv/],
    [
      ["revert", "x.csv", "--aply"],
      /revert has no flag --aply: did you mean --apply\?/,
    ],
    [
      ["revert", "x.csv", "--user", "a"],
      /revert has no flag --user: it belongs to a sync/,
    ],
    // @effect/cli would give it to the main command: a silent dry-run.
    [["--apply", "revert", "x.csv"], /--apply goes after revert LOG\.csv/],
    [
      ["--completions", "tcsh"],
      /--completions needs one of bash, zsh, fish, sh/,
    ],
  ];
  for (const [args, said] of cases) {
    // No settings exist here: a usage error must come before reading them.
    const result = await runCli(args, { cwd: root });
    const shown = `${args.join(" ")}: ${result.stderr}`;
    assert.equal(result.code, 2, shown);
    assert.match(result.stderr, said, shown);
    assert.doesNotMatch(result.stderr, /Invalid subcommand|settings/, shown);
    assert.equal(result.stdout, "", shown);
  }
});

const flagsSection = (help: string) =>
  help.slice(
    help.indexOf("Flags:"),
    help.indexOf("\n\n", help.indexOf("Flags:")),
  );

Deno.test("--help fits a screen: usage, each flag once with its meaning, examples, exit codes, no colour codes", async () => {
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0, help.stderr);
  const lines = help.stdout.trimEnd().split("\n");
  assert.ok(lines.length <= 40, `${lines.length} lines`);
  assert.ok(lines.every((line) => line.length <= 80), help.stdout);
  assert.ok(!help.stdout.includes("\x1b"), "ANSI escape in help");
  for (const heading of ["Usage:", "Flags:", "Examples:", "Exit codes:"]) {
    assert.ok(help.stdout.includes(heading), heading);
  }
  const flags = flagsSection(help.stdout);
  for (const flag of syncFlags) {
    const mentions = flags.split("\n").filter((line) =>
      line.trimStart().startsWith(`--${flag.name} `) ||
      line.trimStart().startsWith(`--${flag.name},`)
    );
    assert.equal(mentions.length, 1, `--${flag.name} in\n${flags}`);
    assert.ok(mentions[0].includes(flag.meaning));
  }
  assert.doesNotMatch(help.stdout, /--wizard|A true or false value/);
  for (const code of ["0", "1", "2", "3", "4", "5", "130"]) {
    assert.match(help.stdout, new RegExp(`\\b${code} `));
  }

  const revert = await runCli(["revert", "--help"]);
  assert.equal(revert.code, 0, revert.stderr);
  assert.ok(revert.stdout.split("\n").length <= 40);
  const revertSection = flagsSection(revert.stdout);
  for (const flag of revertFlags) {
    assert.ok(revertSection.includes(`--${flag.name}`), flag.name);
  }
  assert.doesNotMatch(revertSection, /--user|--batch-size|--check/);
});

Deno.test("--help in a terminal, colours allowed, is still plain text", async () => {
  const command = [Deno.execPath(), ...cliArgs(["--help"])].join(" ");
  const env = cliEnv({ TERM: "xterm-256color" });
  delete env.NO_COLOR;
  const output = await new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const screen = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, screen);
  assert.match(screen, /Exit codes:/);
  assert.ok(!screen.includes("\x1b"), screen);
});

/** What bash offers after these words, with the script the CLI prints. */
const bashOffers = async (script: string, words: ReadonlyArray<string>) => {
  const quoted = words.map((word) => `'${word}'`).join(" ");
  const output = await new Deno.Command("bash", {
    args: [
      "-c",
      `${script}\nCOMP_WORDS=(${quoted}); COMP_CWORD=${
        words.length - 1
      }; _sync_moodle_discourse; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout).trim().split("\n").sort();
};

Deno.test("bash completion offers revert's own flags after revert, and the sync's before", async () => {
  const completions = await runCli(["--completions", "bash"]);
  assert.equal(completions.code, 0, completions.stderr);
  const script = completions.stdout;
  const program = "sync-moodle-discourse";
  assert.deepEqual(
    await bashOffers(script, [program, "revert", "x.csv", "--"]),
    [
      "--apply",
      "--help",
      "--json",
      "--log-dir",
      "--settings",
      "--state",
      "--trust-edited-log",
    ],
  );
  const main = await bashOffers(script, [program, "--"]);
  for (const flag of syncFlags) assert.ok(main.includes(`--${flag.name}`));
  assert.ok(!main.includes("--wizard"));
  assert.deepEqual(await bashOffers(script, [program, "re"]), ["revert"]);
  assert.deepEqual(await bashOffers(script, [program, "--ap"]), ["--apply"]);
  // The audit log to revert is a file name.
  assert.deepEqual(await bashOffers(script, [program, "revert", "deno.j"]), [
    "deno.json",
  ]);

  const fish = await runCli(["--completions", "fish"]);
  assert.match(
    fish.stdout,
    /-n '__fish_seen_subcommand_from revert' -l apply/,
  );
  assert.doesNotMatch(
    fish.stdout,
    /-n '__fish_seen_subcommand_from revert' -l user/,
  );
  const zsh = await runCli(["--completions", "zsh"]);
  assert.match(zsh.stdout, /bashcompinit/);
});
