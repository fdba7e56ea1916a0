import { Cause, Effect } from "effect";

/**
 * V8 grows its heap ahead of need to up to four times what survives a full
 * collection, and a run allocates fast (a bio converted per user): at
 * 100,000 users with 2 KB bios about 100 MB were live in a 600 MB heap. A
 * fixed growth of half what is live keeps the heap near 1.5 times it;
 * unlike a size cap it never stops a larger campus. Without pretenuring,
 * the HTML parser's short-lived nodes die young instead of filling the old
 * space, so the more frequent full collections cost no more CPU overall
 * (README, Performance).
 */
export const v8HeapFlag =
  "--v8-flags=--heap-growing-percent=50,--no-allocation-site-pretenuring";

/**
 * The Deno flags every run needs (the compiled binary has them built in).
 * `--no-prompt` and `--deny-ffi`: a missing permission fails with a message
 * instead of stopping an unattended run at a question.
 */
export const denoRunFlags = [
  v8HeapFlag,
  "--no-prompt",
  "--deny-ffi",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
] as const;

/**
 * Deno's refusal of an access its flags did not grant, when `error` is one
 * or was caused by one. (`PermissionDenied` is the operating system's
 * refusal: a file mode, not a flag, so it is not one of these.)
 */
export const deniedByDeno = (error: unknown): Error | undefined => {
  let current = error;
  for (let depth = 0; depth < 6 && current instanceof Error; depth++) {
    if (current instanceof Deno.errors.NotCapable) return current;
    current = current.cause;
  }
  return undefined;
};

/** The first refusal by Deno anywhere in a failed run. */
export const deniedByDenoIn = (
  cause: Cause.Cause<unknown>,
): Error | undefined =>
  [...Cause.failures(cause), ...Cause.defects(cause)]
    .map(deniedByDeno)
    .find((denied) => denied !== undefined);

/**
 * Names the missing flag and the whole command line, rather than blaming the
 * file or the network. Deno says e.g. `Requires read access to
 * "./settings.json", run again with the --allow-read flag`.
 */
export const missingPermissionMessage = (denied: Error): string => {
  const said = /Requires (.+?), run again with the (--allow-[a-z-]+) flag/
    .exec(denied.message);
  const what = said === null
    ? denied.message
    : `it needs ${said[1]}: add ${said[2]}`;
  return `Deno did not grant this run a permission: ${what}. Run the bundle as: deno run ${
    denoRunFlags.join(" ")
  } sync-moodle-discourse.js (the compiled binary and deno task sync have them).`;
};

/**
 * A refusal by Deno is not the file's or the network's fault, so it must not
 * become one of their messages ("check its permissions", "check
 * moodle.endpoint"): it ends the run, and the entry point names the flag.
 */
export const dieWhenDenied = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
): Effect.Effect<A, E, R> =>
  Effect.catchIf(
    effect,
    (error) => deniedByDeno(error) !== undefined,
    (error) => Effect.die(deniedByDeno(error)),
  );
