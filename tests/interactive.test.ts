import assert from "node:assert/strict";
import { discourseUser, moodleUser } from "./doubles/scenarios.ts";
import { byMoodleId, lastLog, withWorld } from "./support/world.ts";

const mainModule = new URL("../src/main.ts", import.meta.url).pathname;
const down = "\x1b[B";
const enter = "\r";

/**
 * `--interactive` needs a terminal: `script` gives the CLI a pseudo-terminal,
 * and the test answers its prompts as a person would, key by key.
 */
Deno.test("--interactive applies what the operator accepts, skips what they skip, and quits", async () => {
  await withWorld({
    moodleUsers: [
      moodleUser(2, "ada", { city: "Paris", country: "FR" }),
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
    const prompts = () => screen.split("Apply these changes").length - 1;
    const waitForPrompt = async (count: number) => {
      for (let i = 0; i < 400 && prompts() < count; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(prompts() >= count, `no prompt number ${count}:\n${screen}`);
    };
    const answer = async (count: number, typed: string) => {
      await waitForPrompt(count);
      await keys.write(new TextEncoder().encode(typed));
    };
    await answer(1, enter); // ada: apply
    await answer(2, down + enter); // bob: skip
    await answer(3, down + down + down + enter); // cyd: quit
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
    // Quitting is the operator's choice, not a failure.
    assert.equal(status.code, 0);
  });
});
