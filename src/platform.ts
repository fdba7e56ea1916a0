import * as FetchHttpClient from "@effect/platform/FetchHttpClient";
import * as FileSystem from "@effect/platform/FileSystem";
import * as HttpClient from "@effect/platform/HttpClient";
import * as NodeFileSystem from "@effect/platform-node-shared/NodeFileSystem";
import * as NodePath from "@effect/platform-node-shared/NodePath";
import * as NodeTerminal from "@effect/platform-node-shared/NodeTerminal";
import { Effect, Layer } from "effect";
import { dieWhenDenied } from "./permissions.ts";

/** Every call of the file system, with Deno's refusals kept apart. */
const guardedFileSystem = Layer.effect(
  FileSystem.FileSystem,
  Effect.map(FileSystem.FileSystem, (fs) =>
    new Proxy(fs, {
      get(target, key) {
        const member: unknown = Reflect.get(target, key);
        if (typeof member !== "function") return member;
        return (...args: Array<unknown>) => {
          const result: unknown = member.apply(target, args);
          return Effect.isEffect(result) ? dieWhenDenied(result) : result;
        };
      },
    })),
).pipe(Layer.provide(NodeFileSystem.layer));

/**
 * The platform services the CLI uses: files, paths and the terminal.
 * `@effect/platform-node`'s NodeContext, like `@effect/platform`'s index,
 * would also load modules built on msgpackr, whose native addon makes Deno
 * ask for FFI access at every start; these modules alone load none of that.
 */
export const PlatformLayer = Layer.mergeAll(
  guardedFileSystem,
  NodePath.layer,
  NodeTerminal.layer,
);

/**
 * fetch, with Deno's refusals (no --allow-net) kept apart. No tracing span
 * per request: nothing here exports spans, and building each one (its URL
 * and redacted headers as attributes) was CPU spent for nobody.
 */
export const HttpLayer = Layer.effect(
  HttpClient.HttpClient,
  Effect.map(
    HttpClient.HttpClient,
    (client) =>
      HttpClient.withTracerDisabledWhen(
        HttpClient.transform(client, dieWhenDenied),
        () => true,
      ),
  ),
).pipe(Layer.provide(FetchHttpClient.layer));
