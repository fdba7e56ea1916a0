// `revert --trust-edited-log` asks at a terminal: only a process has one.
import assert from "node:assert/strict";
import { applyLog, forgeLog } from "../support/revert.ts";
import { withWorld, writes } from "../support/reliability.ts";
import { startInTerminal } from "../support/terminal.ts";

Deno.test("--trust-edited-log reverts an edited log only after the operator types the confirmation in a terminal", async () => {
  await withWorld({}, async (world) => {
    const log = await applyLog(world);
    await forgeLog(log);
    const session = async (typed: string) => {
      const terminal = startInTerminal(
        [
          "--settings",
          world.settingsPath,
          "revert",
          log,
          "--apply",
          "--trust-edited-log",
        ],
        world.env,
      );
      await terminal.waitFor(
        "the confirmation prompt",
        (screen) => screen.includes("to revert it anyway"),
      );
      assert.match(terminal.screen(), /failed its integrity check/);
      await terminal.type(`${typed}\r`);
      return await terminal.finish();
    };
    const writesBefore = writes(world.discourse).length;
    const declined = await session("no");
    assert.equal(declined.code, 2, declined.screen);
    assert.equal(writes(world.discourse).length, writesBefore);

    const confirmed = await session("trust");
    assert.equal(confirmed.code, 0, confirmed.screen);
    // What the edited log said is what was written: the operator vouched.
    assert.equal(
      world.discourse.userByUsername("jose.nunez")?.name,
      "Evil Nunez",
    );
  });
});
