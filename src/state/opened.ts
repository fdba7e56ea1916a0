/**
 * The state store as a run's service: open, unusable (and why), or not
 * asked for. A store that cannot be opened never stops a run: the run reads
 * every profile instead and says why.
 */
import { Context, Data, Effect, Layer } from "effect";
import type { StateStoreUnavailable } from "./errors.ts";
import type { StateStoreOptions } from "./open.ts";
import { StateStore, type StateStoreService } from "./Store.ts";

export type OpenedState = Data.TaggedEnum<{
  Open: { readonly store: StateStoreService };
  Unavailable: { readonly error: StateStoreUnavailable };
  /** A run wired without a store (tests of other parts). */
  NotUsed: Record<never, never>;
}>;
export const OpenedState = Data.taggedEnum<OpenedState>();

export class OpenedStateStore extends Context.Tag("OpenedStateStore")<
  OpenedStateStore,
  OpenedState
>() {
  /** Opens the store for the run's scope; closed when the run ends. */
  static readonly layer = (
    options: StateStoreOptions | undefined,
  ): Layer.Layer<OpenedStateStore> =>
    options === undefined
      ? Layer.succeed(OpenedStateStore, OpenedState.NotUsed())
      : Layer.scoped(
        OpenedStateStore,
        StateStore.make(options).pipe(
          Effect.map((store) => OpenedState.Open({ store })),
          Effect.catchAll((error) =>
            Effect.succeed(OpenedState.Unavailable({ error }))
          ),
        ),
      );
}
