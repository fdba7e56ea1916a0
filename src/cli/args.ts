import { closestName } from "../suggest.ts";

/**
 * The command line, as the operator meets it: every flag once, with its
 * one-line meaning. Help, completion scripts and the check of argv before
 * @effect/cli parses it all come from these tables, so they cannot disagree.
 */
export interface Flag {
  readonly name: string;
  readonly alias?: string;
  /** What follows the flag, e.g. `USERNAME`; a flag without one is a switch. */
  readonly value?: string;
  readonly integer?: boolean;
  /** The smallest value an integer flag takes. */
  readonly min?: number;
  readonly meaning: string;
}

const programName = "sync-moodle-discourse";

const settingsFlag: Flag = {
  name: "settings",
  value: "FILE",
  meaning: "settings file (default ./settings.json)",
};
const logDirFlag: Flag = {
  name: "log-dir",
  value: "DIR",
  meaning: "folder for the CSV audit log (default: logDir)",
};
const stateFlag: Flag = {
  name: "state",
  value: "FILE",
  meaning: "state store (default: state.path or sync-state.sqlite)",
};

export const syncFlags: ReadonlyArray<Flag> = [
  {
    name: "apply",
    meaning: "write the changes; without it a run only shows them",
  },
  { name: "user", value: "USERNAME", meaning: "only this Moodle user" },
  {
    name: "batch-size",
    value: "N",
    integer: true,
    min: 0,
    meaning: "users to consider (default: batchSize, 10); 0: all",
  },
  {
    name: "offset",
    value: "N",
    integer: true,
    min: 0,
    meaning: "users to skip from the start (Moodle id order)",
  },
  { name: "all", meaning: "every user from the offset on" },
  {
    name: "force-recreate",
    meaning: "re-send every field, even unchanged ones, then verify",
  },
  {
    name: "create-missing",
    meaning: "also create the accounts the forum lacks",
  },
  {
    name: "full",
    meaning: "read every profile, ignore the state store, rewrite it",
  },
  {
    name: "check",
    meaning: "dry-run for CI: exit 4 if --apply would write something",
  },
  {
    name: "allow-removals",
    value: "N",
    integer: true,
    min: 0,
    meaning: "remove up to N this run (default: safety.maxRemovals)",
  },
  {
    name: "allow-empty-groups",
    meaning: "a group source that comes back empty may empty its group",
  },
  {
    name: "json",
    meaning: "one JSON object per user on stdout, then a summary",
  },
  {
    name: "interactive",
    alias: "i",
    meaning: "show each user's changes, ask first (needs a terminal)",
  },
  settingsFlag,
  logDirFlag,
  stateFlag,
  {
    name: "concurrency",
    value: "N",
    integer: true,
    min: 1,
    meaning: "at most N users at once (default: concurrency or auto)",
  },
];

export const revertFlags: ReadonlyArray<Flag> = [
  {
    name: "apply",
    meaning: "write the old values back; without it only show them",
  },
  {
    name: "trust-edited-log",
    meaning:
      "with --apply: revert a log failing its check, confirmed at a terminal",
  },
  {
    name: "json",
    meaning: "one JSON object per row on stdout, then a summary",
  },
  settingsFlag,
  logDirFlag,
  stateFlag,
];

const completionShells = ["bash", "zsh", "fish", "sh"] as const;
export type CompletionShell = (typeof completionShells)[number];

const logLevels = [
  "all",
  "trace",
  "debug",
  "info",
  "warning",
  "error",
  "fatal",
  "none",
];

/** Flags of every command, answered before any command runs. */
const commonFlags: ReadonlyArray<Flag> = [
  {
    name: "log-level",
    value: "LEVEL",
    meaning: "show internal logs: debug, info, warning or error",
  },
  { name: "help", alias: "h", meaning: "this help" },
  { name: "version", meaning: "the version" },
  {
    name: "completions",
    value: "SHELL",
    meaning: "completion script for bash, zsh, fish or sh",
  },
];

/** What argv asks for; `Run` goes on to @effect/cli unchanged. */
export type Request =
  | { readonly _tag: "Run" }
  | { readonly _tag: "Help"; readonly command: "sync" | "revert" }
  | { readonly _tag: "Version" }
  | { readonly _tag: "Completions"; readonly shell: CompletionShell }
  | { readonly _tag: "Invalid"; readonly problem: string };

const spelled = (flag: Flag) => `--${flag.name}`;

const findFlag = (
  flags: ReadonlyArray<Flag>,
  token: string,
): Flag | undefined =>
  token.startsWith("--")
    ? flags.find((flag) => flag.name === token.slice(2))
    : flags.find((flag) =>
      flag.alias !== undefined && `-${flag.alias}` === token
    );

/** Words for a flag nobody knows, with the likeliest one meant. */
const unknownFlag = (
  token: string,
  command: "sync" | "revert",
  known: ReadonlyArray<Flag>,
): string => {
  const name = token.replace(/^-+/, "");
  const where = command === "revert" ? "revert has no flag" : "unknown flag";
  if (/^dry-?run$/i.test(name)) {
    return `${where} ${token}: every run is a dry-run unless --apply is given, so leave it out`;
  }
  const meant = closestName(name, known.map((flag) => flag.name));
  if (meant !== undefined) return `${where} ${token}: did you mean --${meant}?`;
  const elsewhere = command === "revert"
    ? findFlag(syncFlags, `--${name}`)
    : findFlag(revertFlags, `--${name}`);
  return elsewhere !== undefined
    ? `${where} ${token}: it belongs to ${
      command === "revert" ? "a sync, not to revert" : "revert"
    }`
    : `${where} ${token}`;
};

const usageHint = (command: "sync" | "revert") =>
  `(${programName}${
    command === "revert" ? " revert" : ""
  } --help lists the flags)`;

/**
 * What is wrong with the integer flags given, by the table's ranges, or
 * undefined. Checked after parsing, where a --json run can still say it in
 * its summary object.
 */
export const outOfRange = (
  flags: ReadonlyArray<Flag>,
  given: Readonly<Record<string, number | undefined>>,
): string | undefined => {
  for (const flag of flags) {
    const value = given[flag.name];
    if (flag.min !== undefined && value !== undefined && value < flag.min) {
      return `${spelled(flag)} must be ${flag.min} or more, not ${value}`;
    }
  }
  return undefined;
};

/**
 * Reads argv against the tables before @effect/cli does, because its
 * answer to a typo is "Invalid subcommand ... use 'revert'". Answers help,
 * version and completions itself; says what is wrong with anything else.
 */
export const readRequest = (argv: ReadonlyArray<string>): Request => {
  let command: "sync" | "revert" = "sync";
  let flags = [...syncFlags, ...commonFlags];
  let logGiven = false;
  const seen: Array<Flag> = [];
  let request: Request | undefined;
  const invalid = (problem: string): Request => ({ _tag: "Invalid", problem });
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (token === "--" && i > 0) {
      return invalid(`"--" only works first, before every flag`);
    }
    if (!token.startsWith("-") || token === "-" || /^-\d/.test(token)) {
      if (command === "sync" && token === "revert") {
        // @effect/cli gives flags before `revert` to the main command, where
        // revert reads only --settings and --log-dir: `--apply revert x`
        // would quietly be a dry-run.
        const misplaced = seen.find((flag) =>
          !commonFlags.includes(flag) && flag !== settingsFlag &&
          flag !== logDirFlag
        );
        if (misplaced !== undefined) {
          return invalid(
            revertFlags.includes(misplaced) ||
              findFlag(revertFlags, spelled(misplaced)) !== undefined
              ? `${spelled(misplaced)} goes after revert LOG.csv, not before it`
              : `revert has no flag ${spelled(misplaced)}`,
          );
        }
        command = "revert";
        flags = [...revertFlags, ...commonFlags];
        continue;
      }
      if (command === "revert" && !logGiven) {
        logGiven = true;
        continue;
      }
      const meant = command === "sync"
        ? closestName(token, ["revert"])
        : undefined;
      return invalid(
        meant !== undefined
          ? `unknown command "${token}": did you mean ${meant}?`
          : command === "sync"
          ? `unexpected argument "${token}": flags start with --, and the only command is revert LOG.csv`
          : `unexpected argument "${token}": revert takes one audit log`,
      );
    }
    const [spelling, inline] = token.startsWith("--") && token.includes("=")
      ? [
        token.slice(0, token.indexOf("=")),
        token.slice(token.indexOf("=") + 1),
      ]
      : [token, undefined];
    const flag = findFlag(flags, spelling);
    if (flag === undefined) {
      return invalid(
        `${unknownFlag(spelling, command, flags)} ${usageHint(command)}`,
      );
    }
    seen.push(flag);
    if (flag.value === undefined) {
      if (inline !== undefined) {
        return invalid(`${spelling} takes no value (found "${inline}")`);
      }
      if (flag.name === "help") request ??= { _tag: "Help", command };
      if (flag.name === "version") request ??= { _tag: "Version" };
      continue;
    }
    const next = argv[i + 1];
    const nextIsFlag = next !== undefined &&
      (findFlag([...syncFlags, ...revertFlags, ...commonFlags], next) !==
          undefined || (next.startsWith("--") && !/^-\d/.test(next)));
    const value = inline ??
      (next === undefined || nextIsFlag ? undefined : next);
    if (value === undefined || value === "") {
      return invalid(
        `${spelling} needs a value: ${spelling} ${flag.value} (${flag.meaning})`,
      );
    }
    if (inline === undefined) i++;
    if (flag.integer && !/^-?\d+$/.test(value)) {
      return invalid(`${spelling} needs a whole number, not "${value}"`);
    }
    if (flag.name === "completions") {
      const shell = completionShells.find((known) => known === value);
      if (shell === undefined) {
        return invalid(
          `--completions needs one of ${
            completionShells.join(", ")
          }, not "${value}"`,
        );
      }
      request ??= { _tag: "Completions", shell };
    }
    if (flag.name === "log-level" && !logLevels.includes(value)) {
      return invalid(
        `--log-level needs one of ${logLevels.join(", ")}, not "${value}"`,
      );
    }
  }
  if (request !== undefined) {
    return request._tag === "Help" ? { _tag: "Help", command } : request;
  }
  if (command === "revert" && !logGiven) {
    return invalid(
      "revert needs the audit log of the --apply run to undo: revert LOG.csv [--apply]",
    );
  }
  return { _tag: "Run" };
};

const flagColumn = (flag: Flag) =>
  `${spelled(flag)}${flag.alias ? `, -${flag.alias}` : ""}${
    flag.value ? ` ${flag.value}` : ""
  }`;

const flagLines = (flags: ReadonlyArray<Flag>) => {
  const width = Math.max(...flags.map((flag) => flagColumn(flag).length)) + 2;
  return flags.map((flag) =>
    `  ${flagColumn(flag).padEnd(width)}${flag.meaning}`
  );
};

const exitCodes = [
  "Exit codes: 0 done; 1 some users failed; 2 bad usage or settings; 3 aborted",
  "(a site refused or was unreachable, or the lock is held); 4 --check: --apply",
  "would write something; 5 removals held (see --allow-removals); 130 stopped.",
];

/** `--help`: a screen's worth, plain text, every flag once. */
export const helpText = (command: "sync" | "revert", version: string) =>
  (command === "sync"
    ? [
      `${programName} ${version}: copies Moodle profiles (name, location, bio,`,
      "email) to the Discourse accounts with the same username.",
      "",
      "Usage:",
      `  ${programName} [flags]               a dry-run: shows what would change`,
      `  ${programName} --apply [flags]       writes the changes`,
      `  ${programName} revert LOG.csv [--apply]   undoes an --apply run`,
      "",
      "Flags:",
      ...flagLines([...syncFlags, ...commonFlags]),
      "",
      "Examples:",
      `  ${programName} --apply --all            every user, changes written`,
      `  ${programName} --check --all            drift check for CI`,
      "",
      ...exitCodes,
      "",
      "Settings, the audit log and more: README.md.",
    ]
    : [
      `${programName} revert LOG.csv [--apply] [--settings FILE] [--log-dir DIR]`,
      "",
      "Puts back the values an --apply run overwrote, from its audit log",
      "(sync_log_{env}_apply_{date}.csv): only the fields Discourse still holds",
      "as that run wrote them. A dry-run unless --apply; it writes its own log.",
      "",
      "Flags:",
      ...flagLines([...revertFlags, commonFlags[1]]),
      "",
      "Example:",
      `  ${programName} revert sync_log_production_apply_20261128_020000.csv --apply`,
      "",
      ...exitCodes,
    ]).join("\n") + "\n";

const words = (flags: ReadonlyArray<Flag>) =>
  flags.flatMap((flag) => [
    spelled(flag),
    ...(flag.alias ? [`-${flag.alias}`] : []),
  ]).join(" ");

/** Flags whose value is a file or folder: completed with paths. */
const pathFlags = [settingsFlag, logDirFlag].map(spelled).join("|");

/**
 * A completion script of our own: @effect/cli's bash script offers the main
 * command's flags after `revert` (it compares the command name with dashes
 * against one spelled with underscores).
 */
export const completionScript = (shell: CompletionShell): string => {
  const fn = "_sync_moodle_discourse";
  const sync = `${words([...syncFlags, ...commonFlags])} revert`;
  const revert = words([...revertFlags, commonFlags[1]]);
  if (shell === "fish") {
    const lines = (flags: ReadonlyArray<Flag>, condition: string) =>
      flags.map((flag) =>
        `complete -c ${programName} -n '${condition}' -l ${flag.name}${
          flag.alias ? ` -s ${flag.alias}` : ""
        }${flag.value ? " -r" : ""} -d '${flag.meaning.replaceAll("'", "\\'")}'`
      );
    return [
      `complete -c ${programName} -f`,
      `complete -c ${programName} -n 'not __fish_seen_subcommand_from revert' -a revert -d 'undo an --apply run from its audit log'`,
      ...lines(
        [...syncFlags, ...commonFlags],
        "not __fish_seen_subcommand_from revert",
      ),
      ...lines(
        [...revertFlags, commonFlags[1]],
        "__fish_seen_subcommand_from revert",
      ),
      `complete -c ${programName} -n '__fish_seen_subcommand_from revert' -F`,
      "",
    ].join("\n");
  }
  const bash = [
    `${fn}() {`,
    `  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"`,
    `  local word opts="${sync}"`,
    "  COMPREPLY=()",
    `  for word in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do`,
    `    [ "$word" = revert ] && opts="${revert}"`,
    "  done",
    '  case "$prev" in',
    `    ${pathFlags}) COMPREPLY=( $(compgen -f -- "$cur") ); return 0 ;;`,
    `    --completions) COMPREPLY=( $(compgen -W "${
      completionShells.join(" ")
    }" -- "$cur") ); return 0 ;;`,
    `    --log-level) COMPREPLY=( $(compgen -W "${
      logLevels.join(" ")
    }" -- "$cur") ); return 0 ;;`,
    `    ${
      [...syncFlags, ...commonFlags].filter((flag) =>
        flag.value !== undefined && flag !== settingsFlag &&
        flag !== logDirFlag && flag.name !== "completions" &&
        flag.name !== "log-level"
      ).map(spelled).join("|")
    }) return 0 ;;`,
    "  esac",
    `  if [[ "$cur" == -* ]]; then`,
    `    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )`,
    `  elif [[ "$opts" == "${revert}" ]]; then`,
    `    COMPREPLY=( $(compgen -f -- "$cur") )`,
    "  else",
    `    COMPREPLY=( $(compgen -W "$opts" -- "$cur") )`,
    "  fi",
    "  return 0",
    "}",
    `complete -o filenames -F ${fn} ${programName}`,
    "",
  ];
  return (shell === "zsh"
    ? ["autoload -U +X bashcompinit && bashcompinit", ...bash]
    : bash).join("\n");
};
