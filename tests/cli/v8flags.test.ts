// The heap setting a run needs (src/permissions.ts) is passed by every way
// the tool is launched from deno.json (deno task sync, each compiled binary;
// README's bundle line is checked with the permissions), and Deno accepts it.
import assert from "node:assert/strict";
import { v8HeapFlag } from "../../src/permissions.ts";

const root = new URL("../..", import.meta.url).pathname;

Deno.test("deno task sync and every compile task pass the V8 heap flag", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${root}deno.json`));
  const tasks = config.tasks as Record<string, string>;
  const launches = [
    tasks.sync,
    ...Object.values(tasks).flatMap((task) =>
      task.split("&&").map((part) => part.trim()).filter((part) =>
        part.startsWith("deno compile ")
      )
    ),
  ];
  assert.ok(launches.length >= 6, launches.join("\n"));
  for (const launch of launches) {
    assert.ok(
      launch.split(" ").includes(v8HeapFlag),
      `${launch} lacks ${v8HeapFlag}`,
    );
  }
});

const evalWith = async (flag: string) => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", flag, "console.log('heap')"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout).trim(),
    stderr: new TextDecoder().decode(output.stderr),
  };
};

Deno.test("Deno accepts the V8 heap flag, where an unknown V8 flag fails the launch", async () => {
  const accepted = await evalWith(v8HeapFlag);
  assert.equal(accepted.code, 0, accepted.stderr);
  assert.equal(accepted.stdout, "heap");
  const unknown = await evalWith("--v8-flags=--no-such-heap-flag");
  assert.notEqual(unknown.code, 0, unknown.stdout);
  assert.match(unknown.stderr, /did not recognize/);
});
