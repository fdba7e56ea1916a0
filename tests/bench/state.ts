/**
 * The state store at scale: time and peak memory to write N entries (one
 * transaction each, as a run writes them), mark a full Moodle list, and read
 * them all back. Each phase runs in its own process and reports its resident
 * memory at its end, with what it read still held; `open` is the floor every
 * process pays (Deno, Effect, SQLite).
 *
 *   deno run --allow-read --allow-write --allow-run --allow-env tests/bench/state.ts [USERS]
 *
 * Measures; asserts nothing.
 */
import { Effect } from "effect";
import {
  profileHash,
  StateStore,
  type UserEntry,
} from "../../src/state/Store.ts";
import { sites } from "../support/stateWriter.ts";

type Phase = "open" | "write" | "list" | "read";
const phases: ReadonlyArray<Phase> = ["open", "write", "list", "read"];

/** Sizes like a real campus: a 200-character bio excerpt, most of the 350. */
const entryOf = (moodleId: number): UserEntry => {
  const snapshot = {
    name: `Student Number${moodleId}`,
    location: "Zürich, Switzerland",
    bioExcerpt: `Studies history and ${moodleId}. `.padEnd(200, "lorem ipsum "),
    email: `student.${moodleId}@students.example.edu`,
  };
  return {
    moodleId,
    moodleUsername: `student${moodleId}`,
    forumId: 100_000 + moodleId,
    forumUsername: `student${moodleId}`,
    desiredHash: profileHash(snapshot),
    snapshot,
  };
};

/** The child runs with --expose-gc; without it this does nothing. */
const collectGarbage = () => {
  const gc: unknown = Reflect.get(globalThis, "gc");
  if (typeof gc === "function") gc();
};

const runPhase = (phase: Phase, path: string, users: number) =>
  Effect.gen(function* () {
    const store = yield* StateStore;
    const started = performance.now();
    let count = yield* store.count;
    let held: ReadonlyMap<number, unknown> | undefined;
    if (phase === "write") {
      for (let id = 1; id <= users; id++) yield* store.upsert(entryOf(id));
      count = yield* store.count;
    } else if (phase === "list") {
      // Everyone but the last 1%: the absence counters move too.
      const listed = Array.from({ length: users * 0.99 }, (_, i) => i + 1);
      yield* store.markFullListSeen(listed);
    } else if (phase === "read") {
      held = yield* store.readAll;
    }
    const seconds = (performance.now() - started) / 1000;
    const rss = Deno.memoryUsage().rss;
    // After a full collection: what the held entries really take.
    collectGarbage();
    const heapUsed = Deno.memoryUsage().heapUsed;
    // Measured while the map is still held: its footprint counts.
    return {
      phase,
      users: held?.size ?? count,
      seconds,
      rssMb: rss / 2 ** 20,
      heapMb: heapUsed / 2 ** 20,
    };
  }).pipe(Effect.provide(StateStore.layer({ path, ...sites })));

const child = async (phase: Phase, path: string, users: number) => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--v8-flags=--expose-gc",
      import.meta.filename ?? "",
      "--phase",
      phase,
      path,
      String(users),
    ],
    stderr: "inherit",
  }).output();
  if (!output.success) throw new Error(`the ${phase} phase failed`);
  return JSON.parse(new TextDecoder().decode(output.stdout));
};

if (Deno.args[0] === "--phase") {
  const [, phase, path, users] = Deno.args;
  const known = phases.find((name) => name === phase);
  if (known === undefined) throw new Error(`unknown phase ${phase}`);
  const result = await Effect.runPromise(runPhase(known, path, Number(users)));
  console.log(JSON.stringify(result));
} else {
  const users = Number(Deno.args[0] ?? 100_000);
  const dir = await Deno.makeTempDir({ prefix: "state-bench-" });
  const path = `${dir}/sync-state.sqlite`;
  try {
    console.log(`state store, ${users} users (${path})`);
    console.log("phase   entries   seconds   RSS MB   live heap MB");
    for (const phase of phases) {
      const r = await child(phase, path, users);
      console.log(
        `${phase.padEnd(7)} ${String(r.users).padStart(7)}   ${
          r.seconds.toFixed(2).padStart(7)
        }   ${r.rssMb.toFixed(0).padStart(6)}   ${
          r.heapMb.toFixed(0).padStart(12)
        }`,
      );
    }
    console.log(
      `file: ${(Deno.statSync(path).size / 1024 / 1024).toFixed(1)} MB`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
