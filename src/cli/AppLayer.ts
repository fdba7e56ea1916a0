/**
 * The one builder of the application's services, from the settings a run
 * uses. The commands and the tests assemble their layers here, so a test
 * runs the engine over the same wiring as the CLI.
 */
import type * as HttpClient from "@effect/platform/HttpClient";
import { Layer } from "effect";
import { AuditLog, type RunMode } from "../audit/AuditLog.ts";
import { Journal } from "../audit/Journal.ts";
import { sealScope } from "../audit/LogMac.ts";
import { discourseConfig, moodleConfig } from "../config/clients.ts";
import { CurrentSettings, type Settings } from "../config/Settings.ts";
import type { DiscourseOptions } from "../discourse/config.ts";
import { Discourse } from "../discourse/Discourse.ts";
import { scrubberFor } from "../domain/secrets.ts";
import { forumKey } from "../lock.ts";
import type { MoodleClientOptions } from "../moodle/config.ts";
import { Moodle } from "../moodle/Moodle.ts";
import { HttpLayer } from "../platform.ts";
import type { StateStoreOptions } from "../state/open.ts";
import { OpenedStateStore } from "../state/opened.ts";
import type { Reporter } from "../sync/Reporter.ts";

/** Waits and retries the tests and the benchmark shrink. */
export interface ClientTuning {
  readonly moodle?: Partial<MoodleClientOptions>;
  readonly discourse?: Partial<DiscourseOptions>;
}

/**
 * The audit log and its journal. An apply log is sealed (`LOG.csv.mac`) for
 * the forum and environment, so `revert` can tell it from an edited file.
 */
const auditLayers = (
  settings: Settings,
  options: { readonly env: string; readonly mode: RunMode },
) =>
  Journal.layer({ forum: forumKey(settings.discourse.url) }).pipe(
    Layer.provideMerge(AuditLog.layer({
      dir: settings.logDir,
      env: options.env,
      mode: options.mode,
      scrub: scrubberFor(settings),
      seal: options.mode === "apply"
        ? sealScope(
          settings.discourse.apiKey,
          settings.discourse.url,
          settings.env,
        )
        : undefined,
    })),
  );

/** The Discourse client alone, over fetch. */
export const discourseLayer = (
  settings: Settings,
  tuning: Partial<DiscourseOptions> = {},
) =>
  Discourse.layer(discourseConfig(settings, tuning)).pipe(
    Layer.provide(HttpLayer),
  );

/** The Moodle client alone, over fetch or (tests) an HTTP client of choice. */
export const moodleLayer = (
  settings: Settings,
  tuning: Partial<MoodleClientOptions> = {},
  http: Layer.Layer<HttpClient.HttpClient> = HttpLayer,
) => Moodle.layer(moodleConfig(settings, tuning)).pipe(Layer.provide(http));

/** What every command's services are told: its mode, output and store. */
interface CommandLayerOptions {
  readonly mode: RunMode;
  readonly reporter: Layer.Layer<Reporter>;
  readonly state?: StateStoreOptions;
}

/**
 * What `sync` runs on: both clients, the audit log, the Reporter and the
 * state store (none when `state` is absent).
 */
export const syncLayer = (
  settings: Settings,
  options: CommandLayerOptions & { readonly tuning?: ClientTuning },
) =>
  Layer.mergeAll(
    moodleLayer(settings, options.tuning?.moodle),
    discourseLayer(settings, options.tuning?.discourse),
    auditLayers(settings, { env: settings.env, mode: options.mode }),
    options.reporter,
    OpenedStateStore.layer(options.state),
  ).pipe(Layer.provideMerge(Layer.succeed(CurrentSettings, settings)));

/** What `revert` runs on: the forum, a log of its own, the Reporter. */
export const revertLayer = (
  settings: Settings,
  options: CommandLayerOptions,
) =>
  Layer.mergeAll(
    discourseLayer(settings),
    options.reporter,
    OpenedStateStore.layer(options.state),
    auditLayers(settings, {
      // Recognisable next to the sync's logs: sync_log_{env}_revert_apply_...
      env: `${settings.env}_revert`,
      mode: options.mode,
    }),
  ).pipe(Layer.provideMerge(Layer.succeed(CurrentSettings, settings)));
