import { ConfigError, type ConfigOrigin } from "./errors.js";
import type { ModelWorkerConfig } from "./types.js";

// Keys TorchServe writes into `models=` snapshots; accepted so a snapshot's value can be extended in place.
const TORCHSERVE_ENTRY_KEYS = new Set(["marName", "minWorkers", "maxWorkers", "batchSize", "maxBatchDelay"]);
const OUR_ENTRY_KEYS = new Set([
  "defaultVersion",
  "workers",
  "url",
  "command",
  "responseTimeout",
  "startupTimeout",
]);
// Node fires a longer timer at once.
const MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
const PATH_SEGMENT = /^[^/?#\s]+$/;

/**
 * Reads the `models=` value: `{"<model>": {"<version>": {defaultVersion?, workers?, url | command}}}`.
 * One entry per model version; a model's default is the version marked `defaultVersion`, else its first.
 * TorchServe's own entries (a `marName`, no url or command) are skipped with a warning, so a
 * TorchServe config.properties still starts.
 */
export function parseModels(
  text: string,
  origin: ConfigOrigin,
  warn: (message: string) => void,
): ModelWorkerConfig[] {
  const fail = (problem: string): never => {
    throw new ConfigError(problem, origin);
  };
  if (text.trim() === "") return [];
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (err) {
    fail(`is not valid JSON (${(err as Error).message})`);
  }
  if (!isRecord(root)) return fail('must be a JSON object: {"<model>": {"<version>": {"url": ...}}}');
  const out: ModelWorkerConfig[] = [];
  for (const [model, versions] of Object.entries(root)) {
    if (!PATH_SEGMENT.test(model)) fail(`model name ${JSON.stringify(model)} cannot be used in a URL path`);
    if (!isRecord(versions))
      return fail(`model ${model}: must map versions to {"url"} or {"command"} entries`);
    const entries = Object.entries(versions);
    if (entries.length === 0) fail(`model ${model}: has no versions`);
    const marked = entries.filter(([, e]) => isRecord(e) && e.defaultVersion === true).map(([v]) => v);
    if (marked.length > 1)
      fail(`model ${model}: versions ${marked.join(", ")} are all marked defaultVersion`);
    for (const [version, entry] of entries) {
      const where = `model ${model} version ${version}`;
      if (!PATH_SEGMENT.test(version)) fail(`${where}: the version cannot be used in a URL path`);
      if (!isRecord(entry)) return fail(`${where}: must be an object with "url" or "command"`);
      for (const key of Object.keys(entry)) {
        if (!OUR_ENTRY_KEYS.has(key) && !TORCHSERVE_ENTRY_KEYS.has(key)) {
          fail(
            `${where}: unknown key "${key}" (expected defaultVersion, workers, url, command, responseTimeout or startupTimeout)`,
          );
        }
      }
      const { url, command, workers = 1, defaultVersion = false, responseTimeout, startupTimeout } = entry;
      for (const [key, value] of [
        ["responseTimeout", responseTimeout],
        ["startupTimeout", startupTimeout],
      ] as const) {
        if (
          value !== undefined &&
          !(typeof value === "number" && value > 0 && value <= MAX_TIMEOUT_SECONDS)
        ) {
          fail(
            `${where}: ${key} must be a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS} (got ${JSON.stringify(value)})`,
          );
        }
      }
      if (typeof defaultVersion !== "boolean") fail(`${where}: defaultVersion must be true or false`);
      if (typeof workers !== "number" || !Number.isInteger(workers) || workers < 1 || workers > 1024) {
        fail(`${where}: workers must be an integer from 1 to 1024`);
      }
      if (url === undefined && command === undefined && "marName" in entry) {
        warn(`${where}: a TorchServe model archive entry without "url" or "command" is not served`);
        continue;
      }
      if ((url === undefined) === (command === undefined))
        fail(`${where}: give exactly one of "url" and "command"`);
      if (url !== undefined && (typeof url !== "string" || !/^https?:\/\/[^/]+/.test(url))) {
        fail(`${where}: url must be an http:// or https:// base URL of a running worker`);
      }
      if (command !== undefined && (typeof command !== "string" || command.trim() === "")) {
        fail(`${where}: command must be a non-empty shell command ({port} is replaced by the worker's port)`);
      }
      out.push({
        model,
        version,
        isDefault: marked.length === 0 ? version === entries[0]?.[0] : marked[0] === version,
        workers: workers as number,
        url: typeof url === "string" ? url.replace(/\/+$/, "") : undefined,
        command: typeof command === "string" ? command : undefined,
        responseTimeoutSeconds: responseTimeout as number | undefined,
        startupTimeoutSeconds: startupTimeout as number | undefined,
      });
    }
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
