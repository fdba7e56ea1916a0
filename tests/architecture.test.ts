// Dependencies run one way: cli -> commands -> stages -> clients -> domain.
// This walks the relative imports of src/ and fails on an import cycle, on an
// import that goes up that order, and on a file no layer claims (so a new
// folder says where it sits before it can be imported from anywhere).
import assert from "node:assert/strict";

const srcRoot = new URL("../src/", import.meta.url);

/**
 * The layers, highest first. A path is claimed by its longest matching
 * prefix, so one file can sit apart from its folder (config/Settings.ts is
 * shared by every layer, while loading it is the edge's business).
 */
const layers: ReadonlyArray<
  { readonly name: string; readonly paths: ReadonlyArray<string> }
> = [
  { name: "cli", paths: ["main.ts", "cli/"] },
  {
    name: "commands",
    // What the edge lends the commands (their layers, the stop signal, the
    // flag table's ranges) lives beside the edge but sits at their level.
    paths: [
      "commands/",
      "cli/AppLayer.ts",
      "cli/StopSignal.ts",
      "cli/args.ts",
      "config/load.ts",
      "config/clients.ts",
    ],
  },
  {
    name: "stages",
    paths: [
      "sync/",
      "revert/",
      "revert.ts",
      "report/",
      "audit/",
      "groups/",
      "leavers/",
      "state/",
    ],
  },
  {
    name: "clients",
    paths: [
      "moodle/",
      "discourse/",
      "http/",
      "lock/",
      "lock.ts",
      "platform.ts",
      "smallFile.ts",
    ],
  },
  {
    name: "domain",
    paths: [
      "domain/",
      "config/Settings.ts",
      // The groups block of the settings schema, beside the group code.
      "groups/settings.ts",
      "suggest.ts",
      "parseProblems.ts",
      "permissions.ts",
    ],
  },
];

/** 0 for the top layer; undefined for a file no layer claims. */
const rankOf = (file: string): number | undefined => {
  let best: { rank: number; length: number } | undefined;
  layers.forEach((layer, rank) => {
    for (const path of layer.paths) {
      const claims = path.endsWith("/") ? file.startsWith(path) : file === path;
      if (claims && (best === undefined || path.length > best.length)) {
        best = { rank, length: path.length };
      }
    }
  });
  return best?.rank;
};

const importPattern =
  /^\s*(?:import|export)\b[^;]*?\bfrom\s+"(\.{1,2}\/[^"]+)"|^\s*import\s+"(\.{1,2}\/[^"]+)"/gm;

const sourceFiles = async function* (dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory) {
      yield* sourceFiles(new URL(`${entry.name}/`, dir));
    } else if (entry.name.endsWith(".ts")) {
      yield new URL(entry.name, dir);
    }
  }
};

/** Every src file (relative to src/) and the src files it imports. */
const importGraph = async (): Promise<Map<string, Array<string>>> => {
  const graph = new Map<string, Array<string>>();
  for await (const fileUrl of sourceFiles(srcRoot)) {
    const file = fileUrl.pathname.slice(srcRoot.pathname.length);
    const source = await Deno.readTextFile(fileUrl);
    const targets = [...source.matchAll(importPattern)]
      .map((match) => new URL(match[1] ?? match[2], fileUrl).pathname)
      .filter((path) => path.startsWith(srcRoot.pathname))
      .map((path) => path.slice(srcRoot.pathname.length));
    graph.set(file, targets);
  }
  return graph;
};

/** One cycle as a path `a -> b -> a`, or undefined when there is none. */
const findCycle = (
  graph: ReadonlyMap<string, ReadonlyArray<string>>,
): string | undefined => {
  const done = new Set<string>();
  const onPath: Array<string> = [];
  const visit = (file: string): string | undefined => {
    const at = onPath.indexOf(file);
    if (at >= 0) return [...onPath.slice(at), file].join(" -> ");
    if (done.has(file)) return undefined;
    onPath.push(file);
    for (const target of graph.get(file) ?? []) {
      const cycle = visit(target);
      if (cycle !== undefined) return cycle;
    }
    onPath.pop();
    done.add(file);
    return undefined;
  };
  for (const file of [...graph.keys()].sort()) {
    const cycle = visit(file);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
};

const upwardEdges = (
  graph: ReadonlyMap<string, ReadonlyArray<string>>,
): Array<string> =>
  [...graph].flatMap(([file, targets]) =>
    targets.flatMap((target) => {
      const from = rankOf(file);
      const to = rankOf(target);
      return from !== undefined && to !== undefined && to < from
        ? [
          `${file} (${layers[from].name}) imports ${target} (${
            layers[to].name
          })`,
        ]
        : [];
    })
  );

Deno.test("every src file belongs to a layer", async () => {
  const unclaimed = [...(await importGraph()).keys()]
    .filter((file) => rankOf(file) === undefined);
  assert.deepEqual(
    unclaimed,
    [],
    "add these files to a layer in tests/architecture.test.ts",
  );
});

Deno.test("src has no import cycle", async () => {
  assert.equal(findCycle(await importGraph()), undefined);
});

Deno.test("no src import goes up the layer order", async () => {
  assert.deepEqual(upwardEdges(await importGraph()), []);
});

Deno.test("the checks see what they are meant to catch", () => {
  const cyclic = new Map([
    ["sync/a.ts", ["sync/b.ts"]],
    ["sync/b.ts", ["domain/c.ts", "sync/a.ts"]],
    ["domain/c.ts", []],
  ]);
  assert.equal(findCycle(cyclic), "sync/a.ts -> sync/b.ts -> sync/a.ts");
  const upward = new Map([["domain/c.ts", ["cli/Cli.ts"]]]);
  assert.deepEqual(upwardEdges(upward), [
    "domain/c.ts (domain) imports cli/Cli.ts (cli)",
  ]);
  assert.equal(rankOf("config/Settings.ts"), layers.length - 1);
  assert.equal(rankOf("config/load.ts"), 1);
});
