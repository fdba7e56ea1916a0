import assert from "node:assert/strict";
import { discourseUser, moodleUser } from "./doubles/scenarios.ts";
import { byMoodleId, lastLog, withWorld } from "./support/world.ts";

const mainModule = new URL("../src/main.ts", import.meta.url).pathname;
/** Longer than a console line: its end is cut with "…" until asked for. */
const adaBio =
  "Mathematician and writer, known for her work on the Analytical Engine.\n" +
  "Last line: the very end of Ada's bio.";
const down = "\x1b[B";
const enter = "\r";

/**
 * `--interactive` needs a terminal: `script` gives the CLI a pseudo-terminal,
 * and the test answers its prompts as a person would, key by key.
 */
Deno.test("--interactive shows long changes whole on request, applies what the operator accepts, skips what they skip, and quits", async () => {
  await withWorld({
    moodleUsers: [
      moodleUser(2, "ada", {
        city: "Paris",
        country: "FR",
        description: adaBio,
        descriptionformat: 2,
      }),
      moodleUser(3, "bob", { city: "Roma", country: "IT" }),
      moodleUser(4, "cyd", { city: "Oslo", country: "NO" }),
      moodleUser(5, "dan", { city: "Lima", country: "PE" }),
    ],
    forumUsers: [
      discourseUser(-1, "system", { admin: true }),
      discourseUser(2, "ada", {}),
      discourseUser(3, "bob", {}),
      discourseUser(4, "cyd", {}),
      discourseUser(5, "dan", {}),
    ],
  }, async (world) => {
    const command = [
      Deno.execPath(),
      "run",
      "--allow-all",
      mainModule,
      "--settings",
      world.settingsPath,
      "--all",
      "--interactive",
    ].join(" ");
    const child = new Deno.Command("script", {
      args: ["-qec", command, "/dev/null"],
      cwd: new URL("..", import.meta.url).pathname,
      env: { ...world.env, NO_COLOR: "1", TERM: "xterm" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // A prompt that never comes must fail the test, not hang the suite.
    const watchdog = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const keys = child.stdin.getWriter();
    let screen = "";
    const reading = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stdout) screen += decoder.decode(chunk);
    })();
    /** Waits until `text` appears after `from` on the screen; its end. */
    const waitFor = async (text: string, from = 0) => {
      for (let i = 0; i < 400 && !screen.includes(text, from); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const at = screen.indexOf(text, from);
      assert.ok(at >= 0, `never shown: ${text}\n${screen}`);
      return at + text.length;
    };
    const type = (typed: string) => keys.write(new TextEncoder().encode(typed));
    const adaPrompt = await waitFor("Apply these changes to ada?");
    // The bio is cut on the first view...
    assert.ok(!screen.slice(0, adaPrompt).includes("the very end"));
    await type(down + down + down + enter); // show full changes
    // ...then shown whole, before the same question is asked again.
    const full = await waitFor("+ Last line: the very end of Ada's bio.");
    await waitFor("Apply these changes to ada?", full);
    await type(enter); // ada: apply
    await waitFor("Apply these changes to bob?");
    await type(down + enter); // bob: skip
    await waitFor("Apply these changes to cyd?");
    await type(down + down + down + down + enter); // cyd: quit
    await keys.close();
    const status = await child.status;
    clearTimeout(watchdog);
    await reading;
    await child.stderr.cancel();

    assert.equal(world.discourse.userByUsername("ada")?.location, "Paris, FR");
    assert.equal(world.discourse.userByUsername("bob")?.location ?? "", "");
    assert.equal(world.discourse.userByUsername("cyd")?.location ?? "", "");
    assert.equal(world.discourse.userByUsername("dan")?.location ?? "", "");
    const rows = byMoodleId((await lastLog(world)).rows);
    assert.equal(rows.get(2)?.status, "SUCCESS");
    assert.equal(rows.get(3)?.status, "SKIPPED");
    assert.equal(rows.get(4)?.status, "SKIPPED");
    assert.equal(rows.has(5), false); // never reached after quit
    assert.match(screen, /quit by the operator/);
    assert.match(screen, /bio:\s+- \(empty\)\s+\+ Mathematician/);
    // Asked about without a status; applied, it prints once, as SUCCESS.
    assert.match(screen, /\? ada UPDATE: would update location, bio/);
    assert.doesNotMatch(screen, /ada UPDATE\/DRY_RUN/);
    assert.match(screen, /ada UPDATE\/SUCCESS/);
    // The progress bar gives a rate and the time left.
    assert.match(screen, /\d+ users\/min, about \d+ (s|min) left/);
    // Quitting is the operator's choice, not a failure.
    assert.equal(status.code, 0);
  });
});
