// The shape issue 11 asks of src/: no file over 500 lines, the engine under
// 250, and README's Development tree naming every src file on a line of its
// own (and no file that is gone), so a reader can find each stage by name.
import assert from "node:assert/strict";

const repoRoot = new URL("../", import.meta.url);
const srcRoot = new URL("src/", repoRoot);

const sourceFiles = async (dir: URL, prefix = ""): Promise<Array<string>> => {
  const files: Array<string> = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory) {
      files.push(
        ...await sourceFiles(
          new URL(`${entry.name}/`, dir),
          `${prefix}${entry.name}/`,
        ),
      );
    } else if (entry.name.endsWith(".ts")) {
      files.push(`${prefix}${entry.name}`);
    }
  }
  return files.sort();
};

const lineCount = async (file: string) =>
  (await Deno.readTextFile(new URL(file, srcRoot))).split("\n").length - 1;

/**
 * The src files a Development tree names (relative to src/), and the lines
 * that name more than one. A folder line (`name/`) holds the deeper-indented
 * lines below it; a line's first column is its path, the rest is words.
 */
const treeFiles = (readme: string) => {
  const section = readme.slice(readme.indexOf("\n## Development\n"));
  const open = section.indexOf("```\n") + 4;
  const block = section.slice(open, section.indexOf("```", open));
  const listed: Array<string> = [];
  const crowded: Array<string> = [];
  let inSrc = false;
  let folders: Array<{ indent: number; name: string }> = [];
  for (const line of block.split("\n")) {
    if (line.trim() === "") continue;
    const indent = line.length - line.trimStart().length;
    const names = line.trim().split(/ {2,}/)[0].split(" ");
    if (indent === 0) {
      inSrc = names[0] === "src/";
      folders = [];
      continue;
    }
    if (!inSrc) continue;
    folders = folders.filter((folder) => folder.indent < indent);
    const prefix = folders.map((folder) => folder.name).join("");
    if (names[0].endsWith("/")) {
      folders.push({ indent, name: names[0] });
      continue;
    }
    const files = names.filter((name) => name.endsWith(".ts"));
    if (files.length > 1) crowded.push(line.trim());
    listed.push(...files.map((file) => `${prefix}${file}`));
  }
  return { listed, crowded };
};

Deno.test("README's Development tree names every src file, one a line", async () => {
  const { listed, crowded } = treeFiles(
    await Deno.readTextFile(new URL("README.md", repoRoot)),
  );
  const actual = await sourceFiles(srcRoot);
  assert.deepEqual(crowded, [], "one file a line");
  assert.deepEqual(
    actual.filter((file) => !listed.includes(file)),
    [],
    "src files missing from README's Development tree",
  );
  assert.deepEqual(
    listed.filter((file) => !actual.includes(file)),
    [],
    "README's Development tree names files src no longer has",
  );
  assert.deepEqual(
    listed.filter((file, i) => listed.indexOf(file) !== i),
    [],
    "named twice",
  );
});

Deno.test("no src file is over 500 lines, the engine under 250", async () => {
  const long: Array<string> = [];
  for (const file of await sourceFiles(srcRoot)) {
    const lines = await lineCount(file);
    if (lines > 500) long.push(`${file}: ${lines} lines`);
  }
  assert.deepEqual(long, []);
  assert.ok((await lineCount("sync/runSync.ts")) < 250);
});

Deno.test("the tree reader sees what it is meant to catch", () => {
  const readme = [
    "# A project",
    "## Development",
    "",
    "```",
    "src/",
    "  main.ts                 entry",
    "  audit/Journal.ts        a path under src/",
    "  sync/                   a folder",
    "    a.ts                    words naming b.ts are words",
    "    c.ts d.ts               two on a line",
    "  e.ts                    back at src/",
    "tests/",
    "  f.ts                    not src",
    "```",
  ].join("\n");
  assert.deepEqual(treeFiles(readme), {
    listed: [
      "main.ts",
      "audit/Journal.ts",
      "sync/a.ts",
      "sync/c.ts",
      "sync/d.ts",
      "e.ts",
    ],
    crowded: ["c.ts d.ts               two on a line"],
  });
});
