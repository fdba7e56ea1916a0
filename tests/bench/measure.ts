// Runs the CLI as an operator does (a subprocess, from source) and measures
// that process alone: wall time, CPU seconds and peak resident memory.
//
// GNU time reports all three exactly when /usr/bin/time is installed. Without
// it (CI images often lack it) the child's /proc entries are polled every
// 100 ms: VmHWM for the peak, utime + stime from /proc/<pid>/stat for CPU.

import { v8HeapFlag } from "../../src/permissions.ts";

const mainModule = new URL("../../src/main.ts", import.meta.url).pathname;

export interface Measured {
  readonly code: number;
  readonly wallSeconds: number;
  readonly cpuSeconds: number;
  readonly peakRssMb: number;
  /** The last lines of each stream, for diagnosing a failed run. */
  readonly stdoutTail: string;
  readonly stderrTail: string;
}

export type Method = "gnu-time" | "proc";

const gnuTime = "/usr/bin/time";

/** GNU time, if present and working; `/proc` polling otherwise. */
export const chooseMethod = async (): Promise<Method> => {
  try {
    const probe = await new Deno.Command(gnuTime, {
      args: ["-f", "%e %U %S %M", "true"],
      stdout: "null",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(probe.stderr).trim();
    if (probe.code === 0 && /^[\d.]+ [\d.]+ [\d.]+ \d+$/.test(text)) {
      return "gnu-time";
    }
  } catch {
    // Not installed: fall through.
  }
  return "proc";
};

/** Keeps the last `limit` characters of a stream without holding all of it. */
const drainTail = async (
  stream: ReadableStream<Uint8Array>,
  limit = 8_000,
): Promise<string> => {
  const decoder = new TextDecoder();
  let tail = "";
  for await (const chunk of stream) {
    tail += decoder.decode(chunk, { stream: true });
    if (tail.length > limit * 2) tail = tail.slice(-limit);
  }
  return tail.slice(-limit);
};

interface ProcSample {
  readonly cpuTicks: number;
  readonly hwmKb: number;
}

/**
 * The peak is the kernel's own high-water mark, so polling misses none of it
 * but what the last interval adds; CPU misses at most that interval's share.
 */
const pollMs = 100;

/** Linux's USER_HZ: 100 on every mainstream architecture. */
const ticksPerSecond = 100;

/**
 * Deno lets only --allow-all read another process's /proc entries, so `cat`
 * reads them: one short process per sample, and the bench keeps its narrow
 * permissions.
 */
const sampleProc = async (pid: number): Promise<ProcSample | undefined> => {
  try {
    const read = await new Deno.Command("cat", {
      args: [`/proc/${pid}/status`, `/proc/${pid}/stat`],
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(read.stdout);
    const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(text);
    // The stat line is last. Its command name (field 2) may hold spaces and
    // parentheses: count the fields after the last ")".
    const stat = text.slice(text.lastIndexOf(`\n${pid} (`) + 1);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (!hwm || !Number.isFinite(utime) || !Number.isFinite(stime)) {
      return undefined; // Gone, or a zombie with no memory lines left.
    }
    return { cpuTicks: utime + stime, hwmKb: Number(hwm[1]) };
  } catch {
    return undefined;
  }
};

export const runMeasuredCli = async (
  method: Method,
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly timeFile: string },
): Promise<Measured> => {
  const denoArgs = [
    "run",
    // The heap as the launchers set it (deno task sync, the binary).
    v8HeapFlag,
    // The doubles are all it may reach: nothing leaves the machine.
    "--allow-net=127.0.0.1",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys",
    mainModule,
    ...args,
  ];
  const command = method === "gnu-time"
    ? new Deno.Command(gnuTime, {
      args: [
        "-f",
        "%e %U %S %M",
        "-o",
        options.timeFile,
        Deno.execPath(),
        ...denoArgs,
      ],
      cwd: options.cwd,
      env: cliEnv(),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
    : new Deno.Command(Deno.execPath(), {
      args: denoArgs,
      cwd: options.cwd,
      env: cliEnv(),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
  const started = performance.now();
  const child = command.spawn();
  const stdout = drainTail(child.stdout);
  const stderr = drainTail(child.stderr);

  let last: ProcSample | undefined;
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  if (method === "proc") {
    while (!exited) {
      last = (await sampleProc(child.pid)) ?? last;
      await Promise.race([status, delay(pollMs)]);
    }
  }
  const { code } = await status;
  const wallSeconds = (performance.now() - started) / 1000;
  const [stdoutTail, stderrTail] = await Promise.all([stdout, stderr]);

  if (method === "gnu-time") {
    const text = (await Deno.readTextFile(options.timeFile)).trim();
    // Lines before the last are GNU time's own notes ("Command exited...").
    const numbers = text.split("\n").at(-1)!.split(" ").map(Number);
    const [elapsed, user, system, maxRssKb] = numbers;
    return {
      code,
      wallSeconds: elapsed,
      cpuSeconds: user + system,
      peakRssMb: maxRssKb / 1024,
      stdoutTail,
      stderrTail,
    };
  }
  return {
    code,
    wallSeconds,
    // No sample (no /proc: not Linux): unknown, which no target accepts.
    cpuSeconds: (last?.cpuTicks ?? NaN) / ticksPerSecond,
    peakRssMb: (last?.hwmKb ?? NaN) / 1024,
    stdoutTail,
    stderrTail,
  };
};

const delay = (ms: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Nothing from the bench's own environment leaks into the CLI's settings. */
const cliEnv = (): Record<string, string> => ({
  NO_COLOR: "1",
  PATH: Deno.env.get("PATH") ?? "",
  HOME: Deno.env.get("HOME") ?? "/tmp",
  ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
});
