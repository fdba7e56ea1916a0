/** Which state store a command opens, from its flag and the settings. */
import { existsSync } from "node:fs";
import { Option } from "effect";
import type { Settings } from "../config/Settings.ts";
import { defaultStatePath, type StateStoreOptions } from "../state/open.ts";

export const stateOptions = (
  settings: Settings,
  settingsFile: string,
  flag: Option.Option<string>,
  options: { readonly readOnly: boolean; readonly onlyIfPresent?: boolean },
): StateStoreOptions | undefined => {
  // `--state`, else `state.path`, else beside the settings file.
  const path = Option.getOrElse(
    flag,
    () => settings.state?.path ?? defaultStatePath(settingsFile),
  );
  if (options.onlyIfPresent && !existsSync(path)) return undefined;
  return {
    path,
    moodleEndpoint: settings.moodle.endpoint,
    discourseUrl: settings.discourse.url,
    readOnly: options.readOnly,
  };
};
