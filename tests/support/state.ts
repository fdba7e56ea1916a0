// Opening the state store through its layer in tests, on real temp files.
import assert from "node:assert/strict";
import { Effect, Either } from "effect";
import {
  StateStore,
  type StateStoreOptions,
  type StateStoreService,
  StateStoreUnavailable,
} from "../../src/state/Store.ts";
export { sites } from "./stateWriter.ts";

export const inTempDir = async (test: (dir: string) => Promise<void>) => {
  const dir = await Deno.makeTempDir({ prefix: "state-test-" });
  try {
    await test(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
};

/** Opens the store, runs `use`, closes it: success or the typed failure. */
export const withStore = <A, E>(
  options: StateStoreOptions,
  use: (store: StateStoreService) => Effect.Effect<A, E>,
) =>
  Effect.runPromise(
    Effect.flatMap(StateStore, use).pipe(
      Effect.provide(StateStore.layer(options)),
      Effect.either,
    ),
  );

export const valueOf = <A, E>(result: Either.Either<A, E>): A =>
  Either.getOrThrowWith(result, (error) => error);

export const unavailableReason = <A, E>(result: Either.Either<A, E>) => {
  const error = Either.flip(result).pipe(Either.getOrThrow);
  assert.ok(error instanceof StateStoreUnavailable, String(error));
  return error.reason;
};

export const readAll = (options: StateStoreOptions) =>
  withStore(options, (store) => store.readAll).then(valueOf);

export const fileBytes = (path: string) => Deno.readFileSync(path);
