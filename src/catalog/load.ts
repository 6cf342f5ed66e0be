import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import type { Catalog, MetricDefinition, MetricSection, MetricType } from "./types.js";

/** A metrics YAML that cannot be used; names the file, the metric and what is wrong. Exit status 2. */
export class CatalogError extends Error {
  readonly exitCode = 2;
  constructor(
    readonly file: string,
    readonly where: string,
    readonly reason: string,
  ) {
    super(`${file}: ${where}: ${reason}`);
    this.name = "CatalogError";
  }
}

/** Path of the bundled default catalog (TorchServe's default metrics.yaml); same depth from src/ and dist/. */
export const DEFAULT_CATALOG_PATH = fileURLToPath(new URL("../../src/catalog/metrics.yaml", import.meta.url));

const SECTIONS: readonly MetricSection[] = ["ts_metrics", "model_metrics"];
const TYPES: readonly MetricType[] = ["counter", "gauge", "histogram"];
const METRIC_KEYS = new Set(["name", "unit", "dimensions", "buckets"]);
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** TorchServe appends the worker's host to every backend metric. */
const MODEL_HOSTNAME = "Hostname";

/** Loads the bundled default catalog. */
export function loadDefaultCatalog(): Catalog {
  return { ...loadCatalogFile(DEFAULT_CATALOG_PATH), source: "bundled default" };
}

/** Reads and validates a TorchServe-format metrics YAML file. */
export function loadCatalogFile(path: string): Catalog {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new CatalogError(path, "metrics_config", `cannot read the file (${(err as Error).message})`);
  }
  return parseCatalog(text, path);
}

/** Parses TorchServe-format metrics YAML text; `file` is only used in error messages. */
export function parseCatalog(text: string, file: string): Catalog {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const syntax = doc.errors[0];
  if (syntax) {
    const at = syntax.linePos?.[0];
    const reason = (syntax.message.split("\n")[0] ?? "invalid YAML").replace(
      / at line \d+, column \d+:?$/,
      "",
    );
    throw new CatalogError(file, at ? `line ${at.line}, column ${at.col}` : "YAML", reason);
  }
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 10_000 });
  } catch (err) {
    // An alias with no anchor, or an alias bomb, is only found when the document is resolved.
    throw new CatalogError(file, "YAML", (err as Error).message);
  }
  if (root === null || root === undefined) return { metrics: [], source: file };
  if (!isRecord(root))
    throw new CatalogError(file, "top level", "must be a mapping with ts_metrics and/or model_metrics");

  const metrics: MetricDefinition[] = [];
  const seen = new Map<string, string>();
  for (const key of Object.keys(root)) {
    if (key !== "dimensions" && !SECTIONS.includes(key as MetricSection)) {
      throw new CatalogError(
        file,
        key,
        "unknown top-level key (expected dimensions, ts_metrics, model_metrics)",
      );
    }
  }
  if (root.dimensions !== undefined && !isStringList(root.dimensions)) {
    throw new CatalogError(file, "dimensions", "must be a list of dimension names");
  }
  for (const section of SECTIONS) {
    const body = root[section];
    if (body === undefined || body === null) continue;
    if (!isRecord(body))
      throw new CatalogError(file, section, "must be a mapping of counter/gauge/histogram lists");
    for (const [type, list] of Object.entries(body)) {
      if (!TYPES.includes(type as MetricType)) {
        throw new CatalogError(
          file,
          `${section}.${type}`,
          "unknown metric type (expected counter, gauge, histogram)",
        );
      }
      if (list === null) continue;
      if (!Array.isArray(list))
        throw new CatalogError(file, `${section}.${type}`, "must be a list of metrics");
      list.forEach((entry: unknown, i) => {
        const def = parseMetric(entry, section, type as MetricType, file, `${section}.${type}[${i}]`);
        const earlier = seen.get(def.name);
        if (earlier !== undefined) {
          throw new CatalogError(
            file,
            `${section}.${type}[${i}] (${def.name})`,
            `declared twice (first at ${earlier})`,
          );
        }
        seen.set(def.name, `${section}.${type}[${i}]`);
        metrics.push(def);
      });
    }
  }
  return { metrics, source: file };
}

function parseMetric(
  entry: unknown,
  section: MetricSection,
  type: MetricType,
  file: string,
  path: string,
): MetricDefinition {
  if (!isRecord(entry)) throw new CatalogError(file, path, "must be a mapping with name, unit, dimensions");
  const { name, unit, dimensions, buckets } = entry;
  if (typeof name !== "string" || name === "") throw new CatalogError(file, path, "name is missing");
  const where = `${path} (${name})`;
  if (!METRIC_NAME.test(name)) {
    throw new CatalogError(file, where, `name "${name}" is not a valid Prometheus metric name`);
  }
  for (const key of Object.keys(entry)) {
    if (!METRIC_KEYS.has(key))
      throw new CatalogError(file, where, `unknown key "${key}" (expected name, unit, dimensions, buckets)`);
  }
  if (typeof unit !== "string" || unit === "") throw new CatalogError(file, where, "unit is missing");
  if (dimensions !== undefined && dimensions !== null && !isStringList(dimensions)) {
    throw new CatalogError(file, where, "dimensions must be a list of names");
  }
  const dims = [...(dimensions ?? [])];
  if (section === "model_metrics" && !dims.includes(MODEL_HOSTNAME)) dims.push(MODEL_HOSTNAME);
  for (const dim of dims) {
    if (!LABEL_NAME.test(dim))
      throw new CatalogError(file, where, `dimension "${dim}" is not a valid label name`);
    if (dim.startsWith("__"))
      throw new CatalogError(file, where, `dimension "${dim}" is reserved (starts with __)`);
  }
  const duplicate = dims.find((d, i) => dims.indexOf(d) !== i);
  if (duplicate !== undefined)
    throw new CatalogError(file, where, `dimension "${duplicate}" is listed twice`);
  if (type === "histogram" && dims.includes("le")) {
    throw new CatalogError(file, where, `dimension "le" is reserved for histogram buckets`);
  }
  return { name, type, unit, dimensions: dims, section, buckets: parseBuckets(buckets, type, file, where) };
}

function parseBuckets(buckets: unknown, type: MetricType, file: string, where: string): number[] | undefined {
  if (buckets === undefined || buckets === null) return undefined;
  if (type !== "histogram") throw new CatalogError(file, where, "buckets are only allowed on histograms");
  if (!Array.isArray(buckets) || buckets.length === 0) {
    throw new CatalogError(file, where, "buckets must be a non-empty list of numbers");
  }
  const bounds: number[] = [];
  for (const b of buckets) {
    if (typeof b !== "number" || !Number.isFinite(b)) {
      throw new CatalogError(file, where, `bucket ${JSON.stringify(b)} is not a finite number`);
    }
    const last = bounds[bounds.length - 1];
    if (last !== undefined && b <= last)
      throw new CatalogError(file, where, "buckets must be strictly increasing");
    bounds.push(b);
  }
  return bounds;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isStringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string");
}
