import { parseDocument } from "yaml";
import { DEFAULT_BUCKETS } from "../catalog/types.js";
import { ConfigError } from "../config/errors.js";

/** A latency objective: at least `target` of requests take at most `thresholdSeconds`. */
export interface LatencyObjective {
  /** Seconds; a bucket bound of serve_request_duration_seconds. */
  thresholdSeconds: number;
  /** The share of requests (0 to 1, exclusive) that must be at or under the threshold. */
  target: number;
}

/** A model's objectives; undefined: none of that kind. */
export interface ModelObjectives {
  /** The share of answered requests (0 to 1, exclusive) that must not be 5XX. */
  availability: number | undefined;
  latency: LatencyObjective | undefined;
}

/** One objectives file, resolved: the default and each listed model's own (defaults filled in). */
export interface Objectives {
  /** For every model not listed. */
  default: ModelObjectives;
  /** Listed models, each with the default's objectives where it sets none. */
  models: ReadonlyMap<string, ModelObjectives>;
  /** Which objective kinds each listed model sets itself (null included), so the default leaves it out. */
  overrides: ReadonlyMap<string, { availability: boolean; latency: boolean }>;
  /** The bucket bounds the service runs with (request_duration_buckets). */
  buckets: readonly number[];
  /** The error budget's period (e.g. `30d`), for the budget-remaining rule. */
  period: string;
}

/** Model names as TorchServe allows them (letters, digits, `_`, `-`, `.`): safe in PromQL and YAML. */
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** A Prometheus duration of one unit, e.g. `30d`, `4w`. */
const PERIOD = /^[1-9][0-9]*[hdw]$/;

const TOP_KEYS = ["default", "models", "request_duration_buckets", "period"];

/**
 * Reads an objectives file (see grafana/slo-objectives.yml). Throws {@link ConfigError} naming the
 * file, the key (`models.resnet18.latency.threshold`) and the value for anything it cannot use, a
 * latency threshold that is no bucket bound included.
 */
export function parseObjectives(text: string, file: string): Objectives {
  const doc = parseDocument(text);
  if (doc.errors.length > 0)
    throw new ConfigError(`not valid YAML: ${doc.errors[0]?.message ?? ""}`, { file });
  const root: unknown = doc.toJS();
  const fail = (key: string, value: unknown, problem: string): never => {
    throw new ConfigError(problem, {
      file,
      key,
      value: value === undefined ? undefined : typeof value === "string" ? value : JSON.stringify(value),
    });
  };
  if (!isRecord(root)) return fail("(top level)", root, "must be a mapping with default and models");
  for (const key of Object.keys(root))
    if (!TOP_KEYS.includes(key)) fail(key, undefined, `unknown key (expected ${TOP_KEYS.join(", ")})`);

  const buckets = parseBuckets(root.request_duration_buckets, fail);
  const period = root.period ?? "30d";
  if (typeof period !== "string" || !PERIOD.test(period))
    fail("period", period, "must be a duration in hours, days or weeks, such as 30d or 4w");

  const none: ModelObjectives = { availability: undefined, latency: undefined };
  const defaults =
    root.default === undefined ? none : parseModel(root.default, "default", none, buckets, fail);
  const models = new Map<string, ModelObjectives>();
  const overrides = new Map<string, { availability: boolean; latency: boolean }>();
  const listed = root.models ?? {};
  if (!isRecord(listed)) return fail("models", listed, "must be a mapping of model names to objectives");
  for (const [name, entry] of Object.entries(listed)) {
    if (!MODEL_NAME.test(name))
      fail(`models.${name}`, undefined, "is not a model name (letters, digits, _, - and . only)");
    const body = entry ?? {};
    if (!isRecord(body)) fail(`models.${name}`, entry, "must be a mapping with availability and/or latency");
    models.set(name, parseModel(body, `models.${name}`, defaults, buckets, fail));
    overrides.set(name, {
      availability: Object.hasOwn(body, "availability"),
      latency: Object.hasOwn(body, "latency"),
    });
  }
  return { default: defaults, models, overrides, buckets, period: period as string };
}

type Fail = (key: string, value: unknown, problem: string) => never;

function parseModel(
  raw: unknown,
  where: string,
  inherited: ModelObjectives,
  buckets: readonly number[],
  fail: Fail,
): ModelObjectives {
  if (!isRecord(raw)) return fail(where, raw, "must be a mapping with availability and/or latency");
  for (const key of Object.keys(raw))
    if (key !== "availability" && key !== "latency")
      fail(`${where}.${key}`, undefined, "unknown key (expected availability, latency)");
  const out: ModelObjectives = { ...inherited };
  if (Object.hasOwn(raw, "availability"))
    out.availability =
      raw.availability === null ? undefined : percent(raw.availability, `${where}.availability`, fail);
  if (Object.hasOwn(raw, "latency")) {
    const latency = raw.latency;
    if (latency === null) out.latency = undefined;
    else {
      const key = `${where}.latency`;
      if (!isRecord(latency))
        return fail(key, latency, "must be a mapping with threshold (seconds) and target (%), or null");
      for (const k of Object.keys(latency))
        if (k !== "threshold" && k !== "target")
          fail(`${key}.${k}`, undefined, "unknown key (expected threshold, target)");
      const threshold = latency.threshold;
      if (typeof threshold !== "number" || !(threshold > 0) || !Number.isFinite(threshold))
        return fail(`${key}.threshold`, threshold, "must be a number of seconds above 0");
      if (!buckets.includes(threshold))
        fail(
          `${key}.threshold`,
          threshold,
          `is no bucket bound of serve_request_duration_seconds (request_duration_buckets: ${buckets.join(",")}); ` +
            "add it to request_duration_buckets in the service's config.properties and in this file, so that the " +
            "share of requests under it is counted, not estimated",
        );
      out.latency = { thresholdSeconds: threshold, target: percent(latency.target, `${key}.target`, fail) };
    }
  }
  return out;
}

function percent(raw: unknown, key: string, fail: Fail): number {
  if (typeof raw !== "number" || !(raw > 0 && raw < 100))
    return fail(key, raw, "must be a percentage above 0 and below 100, such as 99.9");
  // 99.9 / 100 is 0.9990000000000001 in binary; 12 digits keep what the user wrote.
  return Number((raw / 100).toPrecision(12));
}

function parseBuckets(raw: unknown, fail: Fail): readonly number[] {
  if (raw === undefined) return DEFAULT_BUCKETS;
  if (
    !Array.isArray(raw) ||
    raw.length === 0 ||
    raw.some((b) => typeof b !== "number" || !Number.isFinite(b))
  )
    return fail(
      "request_duration_buckets",
      raw,
      "must be a list of numbers, as in the service's request_duration_buckets",
    );
  return raw as number[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
