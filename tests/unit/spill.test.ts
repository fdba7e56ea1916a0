// Long Moodle descriptions wait on disk, not in memory: what goes in comes
// back, across blocks and in any script, and no file is left behind.
import assert from "node:assert/strict";
import { openTextSpill } from "../../src/sync/spill.ts";

const texts = [
  "<p>plain</p>",
  "ñandú € 😀 — «comillas» ".repeat(40),
  "x".repeat(3 * 1024 * 1024),
  "",
  "<ul><li>último</li></ul>".repeat(2000),
];

Deno.test("every text put in the spill comes back as it was, in any order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const spill = openTextSpill(dir);
    const places = Array.from({ length: 300 }, (_, i) => texts[i % 5] + i)
      .map((text) => ({ text, where: spill.put(text) }));
    for (const { text, where } of [...places].reverse()) {
      assert.equal(spill.get(where), text);
    }
    spill.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the spill file is gone from its folder as soon as it is open", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const spill = openTextSpill(dir);
    spill.put("y".repeat(2 * 1024 * 1024));
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    spill.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a folder that cannot take the file falls back, and texts still come back", () => {
  const spill = openTextSpill("/nonexistent/folder/for/the/spill");
  const where = spill.put(texts[1]);
  assert.equal(spill.get(where), texts[1]);
  spill.close();
});
