// The CLI at a terminal: `script` gives it a pseudo-terminal, and the test
// answers its prompts as a person would, key by key.
import assert from "node:assert/strict";

const mainModule = new URL("../../src/main.ts", import.meta.url).pathname;

export interface TerminalSession {
  /** Everything the CLI printed so far. */
  readonly screen: () => string;
  /** Waits until `seen` holds of the screen; fails with the screen if not. */
  readonly waitFor: (
    what: string,
    seen: (screen: string) => boolean,
  ) => Promise<void>;
  readonly type: (keys: string) => Promise<void>;
  /** Closes the keyboard and waits for the exit. */
  readonly finish: () => Promise<{ code: number; screen: string }>;
}

export const startInTerminal = (
  args: ReadonlyArray<string>,
  env: Record<string, string>,
): TerminalSession => {
  const command = [Deno.execPath(), "run", "--allow-all", mainModule, ...args]
    .join(" ");
  const child = new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    cwd: new URL("../..", import.meta.url).pathname,
    env: { ...env, NO_COLOR: "1", TERM: "xterm" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // A prompt that never comes must fail the test, not hang the suite.
  const watchdog = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const keys = child.stdin.getWriter();
  let screen = "";
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) screen += decoder.decode(chunk);
  })();
  return {
    screen: () => screen,
    waitFor: async (what, seen) => {
      for (let i = 0; i < 400 && !seen(screen); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(seen(screen), `${what} never came:\n${screen}`);
    },
    type: (typed) => keys.write(new TextEncoder().encode(typed)),
    finish: async () => {
      await keys.close();
      const status = await child.status;
      clearTimeout(watchdog);
      await reading;
      await child.stderr.cancel();
      return { code: status.code, screen };
    },
  };
};
