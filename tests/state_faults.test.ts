// The state store read-only (a dry-run) and under faults: files that are not
// a store, newer schemas, locks, modes, and a writer killed mid-write.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Effect, Either } from "effect";
import {
  fileBytes,
  inTempDir,
  readAll,
  sites,
  unavailableReason,
  valueOf,
  withStore,
} from "./support/state.ts";
import { entryFor, matchesSomePrefix } from "./support/stateWriter.ts";

Deno.test("state store: read-only refuses every write and leaves the file as it was", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/s.sqlite`;
    await withStore(
      { path, ...sites },
      (store) => store.upsert(entryFor(1, 1)),
    );
    const before = fileBytes(path);
    const readOnly = { path, ...sites, readOnly: true };
    const refused = valueOf(
      await withStore(readOnly, (store) =>
        Effect.gen(function* () {
          const all = yield* store.readAll;
          const writes = [
            store.upsert(entryFor(1, 2)),
            store.markFullListSeen([]),
            store.recordSuspended(1),
            store.clearSuspended(1),
            store.forget(1),
          ];
          const tags = [];
          for (const write of writes) {
            tags.push((yield* Effect.flip(write))._tag);
          }
          return { size: all.size, tags };
        })),
    );
    assert.deepEqual(refused, {
      size: 1,
      tags: Array(5).fill("StateStoreReadOnly"),
    });
    assert.deepEqual(fileBytes(path), before);
    const unknownPair = valueOf(
      await withStore(
        { ...readOnly, discourseUrl: "https://x.example" },
        (store) =>
          Effect.all([
            store.readAll,
            store.count,
            Effect.flip(store.upsert(entryFor(3, 1))),
          ]),
      ),
    );
    assert.deepEqual(
      [unknownPair[0].size, unknownPair[1], unknownPair[2]._tag],
      [0, 0, "StateStoreReadOnly"],
    );
    assert.deepEqual(fileBytes(path), before);
    const missing = `${dir}/none.sqlite`;
    const result = await withStore(
      { ...readOnly, path: missing },
      (store) => store.count,
    );
    assert.equal(unavailableReason(result), "missing");
    assert.throws(() => Deno.statSync(missing), Deno.errors.NotFound);
  });
});

Deno.test("state store: a dry-run reads what a running --apply has committed", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/s.sqlite`;
    const seenByDryRun = valueOf(
      await withStore({ path, ...sites }, (writer) =>
        Effect.gen(function* () {
          yield* writer.upsert(entryFor(1, 1));
          yield* writer.upsert(entryFor(2, 1));
          // Still open: the reader must neither wait for it nor block it.
          const read = yield* Effect.promise(() =>
            withStore({ path, ...sites, readOnly: true }, (s) => s.readAll)
          );
          yield* writer.upsert(entryFor(3, 1));
          return valueOf(read);
        })),
    );
    assert.deepEqual([...seenByDryRun.keys()].sort(), [1, 2]);
    assert.equal((await readAll({ path, ...sites })).size, 3);
  });
});

Deno.test("state store: garbage, another SQLite file and a damaged store are typed errors, untouched", async () => {
  await inTempDir(async (dir) => {
    const garbage = `${dir}/garbage.sqlite`;
    Deno.writeTextFileSync(garbage, "not a database at all\n".repeat(400));
    const garbageBytes = fileBytes(garbage);
    for (const readOnly of [false, true]) {
      const result = await withStore(
        { path: garbage, ...sites, readOnly },
        (s) => s.count,
      );
      assert.equal(unavailableReason(result), "not-a-store");
    }
    assert.deepEqual(fileBytes(garbage), garbageBytes);

    const foreign = `${dir}/foreign.sqlite`;
    const db = new DatabaseSync(foreign);
    db.exec("CREATE TABLE notes (text TEXT)");
    db.close();
    const result = await withStore({ path: foreign, ...sites }, (s) => s.count);
    assert.equal(unavailableReason(result), "not-a-store");

    const damaged = `${dir}/damaged.sqlite`;
    await withStore(
      { path: damaged, ...sites },
      (store) =>
        Effect.forEach(
          Array.from({ length: 3000 }, (_, i) => i + 1),
          (id) => store.upsert(entryFor(id, 1)),
        ),
    );
    const bytes = fileBytes(damaged);
    const pageSize = 4096;
    // Past the header and schema pages: the users' pages.
    bytes.fill(0x5a, pageSize * 4, bytes.length - pageSize * 4);
    Deno.writeFileSync(damaged, bytes);
    const read = await withStore({ path: damaged, ...sites }, (s) => s.readAll);
    assert.equal(unavailableReason(read), "corrupt");
  });
});

Deno.test("state store: a schema from a newer version is refused and left as it is", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/s.sqlite`;
    await withStore(
      { path, ...sites },
      (store) => store.upsert(entryFor(1, 1)),
    );
    const db = new DatabaseSync(path);
    db.exec("UPDATE schema_version SET version = 99");
    db.close();
    const before = fileBytes(path);
    for (const readOnly of [false, true]) {
      const result = await withStore(
        { path, ...sites, readOnly },
        (s) => s.readAll,
      );
      assert.equal(unavailableReason(result), "newer");
      assert.match(
        Either.flip(result).pipe(Either.getOrThrow).message,
        /newer version.*schema 99/,
      );
    }
    assert.deepEqual(fileBytes(path), before);
  });
});

Deno.test("state store: an empty file needs the first write run; a held lock is a typed error", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/s.sqlite`;
    Deno.writeFileSync(path, new Uint8Array());
    const dry = await withStore(
      { path, ...sites, readOnly: true },
      (s) => s.count,
    );
    assert.equal(unavailableReason(dry), "older");
    assert.equal(
      valueOf(await withStore({ path, ...sites }, (s) => s.count)),
      0,
    );

    const holder = new DatabaseSync(path);
    holder.exec("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE");
    holder.exec("UPDATE schema_version SET version = version");
    try {
      const result = await withStore(
        { path, ...sites, busyTimeoutMs: 50 },
        (s) => s.count,
      );
      assert.equal(unavailableReason(result), "locked");
    } finally {
      holder.close();
    }
  });
});

Deno.test({
  name: "state store: the file and its journal are readable by the owner alone",
  ignore: Deno.build.os === "windows",
  fn: () =>
    inTempDir(async (dir) => {
      const path = `${dir}/s.sqlite`;
      const modes = valueOf(
        await withStore({ path, ...sites }, (store) =>
          Effect.map(store.upsert(entryFor(1, 1)), () =>
            [path, `${path}-wal`].map((file) =>
              (Deno.statSync(file).mode ?? 0) & 0o777
            ))),
      );
      assert.deepEqual(modes, [0o600, 0o600]);
    }),
});

Deno.test("state store: killed by SIGKILL mid-write, every user is whole and the file reopens", async () => {
  const users = 400;
  for (const delayMs of [0, 37]) {
    await inTempDir(async (dir) => {
      const path = `${dir}/s.sqlite`;
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-write",
          new URL("./support/stateWriter.ts", import.meta.url).pathname,
          path,
          String(users),
        ],
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const lines = child.stdout.pipeThrough(new TextDecoderStream())
        .getReader();
      let seen = "";
      while (!seen.includes("gen 2\n")) {
        const chunk = await lines.read();
        assert.ok(
          !chunk.done,
          "the writer stopped before its second generation",
        );
        seen += chunk.value;
      }
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      child.kill("SIGKILL");
      await lines.cancel();
      assert.equal((await child.status).signal, "SIGKILL");

      const actual = await readAll({ path, ...sites });
      assert.ok(
        matchesSomePrefix(actual, users),
        "the store is no prefix of the writer's steps",
      );
      const check = new DatabaseSync(path, { readOnly: true });
      assert.deepEqual({ ...check.prepare("PRAGMA integrity_check").get() }, {
        integrity_check: "ok",
      });
      check.close();
    });
  }
});
