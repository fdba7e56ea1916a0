import assert from "node:assert/strict";
import { discourseUser, moodleUser } from "../doubles/scenarios.ts";
import { startInTerminal } from "../support/terminal.ts";
import { byMoodleId, lastLog, withWorld } from "../support/world.ts";

/** Longer than a console line: its end is cut with "…" until asked for. */
const adaBio =
  "Mathematician and writer, known for her work on the Analytical Engine.\n" +
  "Last line: the very end of Ada's bio.";
const down = "\x1b[B";
const enter = "\r";

/** `--interactive` needs a terminal: the test is its operator. */
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
    const session = startInTerminal(
      ["--settings", world.settingsPath, "--all", "--interactive"],
      world.env,
    );
    /** Waits until `text` appears after `from` on the screen; its end. */
    const waitFor = async (text: string, from = 0) => {
      await session.waitFor(text, (screen) => screen.includes(text, from));
      return session.screen().indexOf(text, from) + text.length;
    };
    const type = session.type;
    const adaPrompt = await waitFor("Apply these changes to ada?");
    // The bio is cut on the first view...
    assert.ok(!session.screen().slice(0, adaPrompt).includes("the very end"));
    await type(down + down + down + enter); // show full changes
    // ...then shown whole, before the same question is asked again.
    const full = await waitFor("+ Last line: the very end of Ada's bio.");
    await waitFor("Apply these changes to ada?", full);
    await type(enter); // ada: apply
    await waitFor("Apply these changes to bob?");
    await type(down + enter); // bob: skip
    await waitFor("Apply these changes to cyd?");
    await type(down + down + down + down + enter); // cyd: quit
    const { code, screen } = await session.finish();

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
    assert.equal(code, 0);
  });
});
