import { accessSync, constants, readFileSync, statSync, type Stats } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import type { Logger } from "../log.js";
import { nonRegularKind } from "../sources/file-follower.js";
import { cipherListProblem } from "../server/tls-policy.js";
import { DEFAULT_BUCKETS } from "../catalog/types.js";
import { MAX_SCHEMA, MIN_SCHEMA } from "../exposition/native-histogram.js";
import { parseListenAddress } from "./address.js";
import { ConfigError, describeOrigin, type ConfigOrigin } from "./errors.js";
import { parseModels } from "./models.js";
import { parseProperties, type PropertyEntry } from "./properties.js";
import type { MetricsFormat, MetricsMode, Settings } from "./types.js";

/** The settings used when neither config.properties nor the environment says otherwise. */
export const DEFAULT_SETTINGS: Settings = Object.freeze({
  metricsAddress: Object.freeze({ protocol: "http", host: "127.0.0.1", port: 8082 }),
  enableMetricsApi: true,
  // TorchServe defaults to `log`, which leaves /metrics empty; we serve Prometheus text out of the box.
  metricsMode: "prometheus",
  metricsFormat: "torchserve",
  metricsConfig: undefined,
  modelMetricsAutoDetect: false,
  disableSystemMetrics: undefined,
  metricTimeInterval: 60,
  numberOfGpu: undefined,
  inferenceAddress: Object.freeze({ protocol: "http", host: "127.0.0.1", port: 8080 }),
  certificateFile: undefined,
  privateKeyFile: undefined,
  tlsCiphers: undefined,
  tlsHandshakeTimeoutMs: 10_000,
  nvidiaSmiPath: "nvidia-smi",
  nvidiaSmiTimeoutMs: 5000,
  seriesExpirySeconds: 0,
  torchserveZeroSeries: false,
  maxSeriesPerMetric: 50_000,
  enableInferenceApi: undefined,
  models: Object.freeze([]),
  jobQueueSize: 100,
  defaultResponseTimeoutSeconds: 120,
  defaultStartupTimeoutSeconds: 120,
  clientBodyTimeoutSeconds: 30,
  clientReadTimeoutSeconds: 60,
  // TorchServe gives its connections Netty's graceful shutdown, at most 15 s; this also leaves a
  // stop with workers (5 s grace) and a final OTLP push (5 s) inside Kubernetes' default 30 s.
  drainTimeoutSeconds: 15,
  torchserveLogDir: undefined,
  torchserveMetricsDir: undefined,
  torchserveLogFromStart: false,
  torchserveHostname: undefined,
  torchserveConfig: undefined,
  torchserveMetricTimeInterval: undefined,
  histogramGauges: Object.freeze(["HandlerTime", "PredictionTime"]),
  metricLogFiles: Object.freeze([]),
  metricLinesMaxBytes: 8 * 1024 * 1024,
  maxLabelValueLength: 1024,
  requestDurationBuckets: Object.freeze([...DEFAULT_BUCKETS]),
  nativeHistograms: Object.freeze([
    "serve_request_duration_seconds",
    "serve_handler_time_seconds",
    "serve_prediction_time_seconds",
  ]),
  // Bounds 2^(1/8) apart (9%), as client_golang's default factor 1.1: a percentile within one bucket.
  nativeHistogramSchema: 3,
  // OpenTelemetry's default max_size: at schema 3, 160 buckets span 1 ms to 1,000 s.
  nativeHistogramMaxBuckets: 160,
  // Prometheus gives up on a scrape after scrape_timeout (10 s by default); see README.
  scrapeSendTimeoutSeconds: 15,
  // Prometheus asks for OpenMetrics first by default: serving it would change what today's scrapes get.
  openMetrics: false,
  sourceFile: undefined,
} satisfies Settings);

/** Options of {@link resolveSettings}. */
export interface ResolveSettingsOptions {
  /** config.properties to read; relative to `cwd`. Undefined: defaults (and env vars, if switched on). */
  file?: string | undefined;
  /** Environment to read `TS_*` variables from; defaults to `process.env`. */
  env?: NodeJS.ProcessEnv | undefined;
  /** Receives warnings: unknown keys, deprecated values, ignored env vars. */
  logger: Logger;
  /** Directory relative paths are resolved against; defaults to `process.cwd()`. */
  cwd?: string | undefined;
}

/** One value to interpret, with where it came from (a file line or an env var) for messages. */
interface RawValue {
  /** The value with surrounding whitespace removed; Java keeps trailing spaces, which only ever hurt. */
  value: string;
  origin: ConfigOrigin & { key: string; value: string };
}

interface ApplyContext {
  cwd: string;
  logger: Logger;
}

type Apply = (settings: Settings, raw: RawValue, ctx: ApplyContext) => void;

const MAX_TIMER_MS = 2 ** 31 - 1;

// The keys this service reads, in the order they are applied. Each also comes from TS_<KEY> when
// env vars are switched on (TorchServe itself has no env var for metric_time_interval; we do).
const SETTERS: Record<string, Apply> = {
  metrics_address: (s, raw) => {
    s.metricsAddress = parseListenAddress(raw.value, "metrics", raw.origin);
  },
  enable_metrics_api: (s, raw) => {
    s.enableMetricsApi = parseBoolean(raw);
  },
  metrics_mode: (s, raw) => {
    s.metricsMode = parseChoice<MetricsMode>(raw, ["prometheus", "log", "legacy"]);
  },
  metrics_format: (s, raw, ctx) => {
    if (raw.value.toLowerCase() === "prometheus") {
      ctx.logger.warn(
        `${describeOrigin(raw.origin)}: metrics_format=prometheus is deprecated (TorchServe removed ` +
          `metrics_format in 0.8) and is read as metrics_format=torchserve; remove the line to silence this warning`,
      );
      s.metricsFormat = "torchserve";
      return;
    }
    s.metricsFormat = parseChoice<MetricsFormat>(raw, ["torchserve", "otel"]);
  },
  metrics_config: (s, raw, ctx) => {
    s.metricsConfig = parseExistingFile(raw, ctx.cwd);
  },
  model_metrics_auto_detect: (s, raw) => {
    s.modelMetricsAutoDetect = parseBoolean(raw);
  },
  disable_system_metrics: (s, raw) => {
    s.disableSystemMetrics = parseBoolean(raw);
  },
  metric_time_interval: (s, raw) => {
    s.metricTimeInterval = parseInterval(raw);
  },
  number_of_gpu: (s, raw) => {
    s.numberOfGpu = raw.value === "" ? undefined : parseInteger(raw, 0, Number.MAX_SAFE_INTEGER);
  },
  inference_address: (s, raw) => {
    s.inferenceAddress = parseListenAddress(raw.value, "inference", raw.origin);
  },
  certificate_file: (s, raw, ctx) => {
    s.certificateFile = parseExistingFile(raw, ctx.cwd);
  },
  private_key_file: (s, raw, ctx) => {
    s.privateKeyFile = parseExistingFile(raw, ctx.cwd);
  },
  tls_ciphers: (s, raw) => {
    const problem = raw.value === "" ? "is empty" : cipherListProblem(raw.value);
    if (problem !== undefined)
      fail(raw, `is not an OpenSSL cipher list that selects a TLS 1.2 suite (${problem})`);
    s.tlsCiphers = raw.value;
  },
  tls_handshake_timeout_ms: (s, raw) => {
    s.tlsHandshakeTimeoutMs = parseInteger(raw, 1, MAX_TIMER_MS);
  },
  nvidia_smi_path: (s, raw, ctx) => {
    if (raw.value === "")
      fail(raw, "is empty; give the nvidia-smi executable's name (looked up on PATH) or path");
    // A bare name is looked up on PATH when run; only something with a directory part is a path.
    s.nvidiaSmiPath = /[/\\]/.test(raw.value) ? resolve(ctx.cwd, raw.value) : raw.value;
  },
  nvidia_smi_timeout_ms: (s, raw) => {
    s.nvidiaSmiTimeoutMs = parseInteger(raw, 1, MAX_TIMER_MS);
  },
  series_expiry_seconds: (s, raw) => {
    s.seriesExpirySeconds = parseInteger(raw, 0, 10 * 365 * 24 * 3600);
  },
  torchserve_zero_series: (s, raw) => {
    s.torchserveZeroSeries = parseBoolean(raw);
  },
  max_series_per_metric: (s, raw) => {
    s.maxSeriesPerMetric = parseInteger(raw, 1, 10_000_000);
  },
  enable_inference_api: (s, raw) => {
    s.enableInferenceApi = parseBoolean(raw);
  },
  models: (s, raw, ctx) => {
    s.models = parseModels(raw.value, raw.origin, (m) =>
      ctx.logger.warn(`${describeOrigin(raw.origin)}: ${m}`),
    );
  },
  job_queue_size: (s, raw) => {
    s.jobQueueSize = parseInteger(raw, 0, 1_000_000);
  },
  default_response_timeout: (s, raw) => {
    s.defaultResponseTimeoutSeconds = parseInterval(raw);
  },
  default_startup_timeout: (s, raw) => {
    s.defaultStartupTimeoutSeconds = parseInterval(raw);
  },
  scrape_send_timeout: (s, raw) => {
    s.scrapeSendTimeoutSeconds = parseInterval(raw);
  },
  openmetrics: (s, raw) => {
    s.openMetrics = parseBoolean(raw);
  },
  client_body_timeout: (s, raw) => {
    s.clientBodyTimeoutSeconds = parseInterval(raw);
  },
  client_read_timeout: (s, raw) => {
    s.clientReadTimeoutSeconds = parseInterval(raw);
  },
  drain_timeout: (s, raw) => {
    s.drainTimeoutSeconds = parseDrainTimeout(raw);
  },
  torchserve_log_dir: (s, raw, ctx) => {
    s.torchserveLogDir = parseDirectory(raw, ctx.cwd);
  },
  torchserve_metrics_dir: (s, raw, ctx) => {
    s.torchserveMetricsDir = parseDirectory(raw, ctx.cwd);
  },
  torchserve_log_from_start: (s, raw) => {
    s.torchserveLogFromStart = parseBoolean(raw);
  },
  torchserve_hostname: (s, raw) => {
    const host = raw.value.trim();
    s.torchserveHostname = host === "" ? undefined : host;
  },
  torchserve_config: (s, raw, ctx) => {
    s.torchserveConfig = parseExistingFile(raw, ctx.cwd);
    s.torchserveMetricTimeInterval =
      s.torchserveConfig === undefined ? undefined : readTorchServeInterval(raw, s.torchserveConfig);
  },
  histogram_gauges: (s, raw) => {
    s.histogramGauges = parseNames(raw);
  },
  metric_log_files: (s, raw, ctx) => {
    s.metricLogFiles = raw.value
      .split(",")
      .map((p) => p.trim())
      .filter((p) => p !== "")
      .map((p) => resolve(ctx.cwd, p));
    for (const path of s.metricLogFiles) checkFollowable(raw, path);
  },
  metric_lines_max_bytes: (s, raw) => {
    s.metricLinesMaxBytes = parseInteger(raw, 1, 1024 * 1024 * 1024);
  },
  max_label_value_length: (s, raw) => {
    // Up to the longest metric line the parser takes: a higher cap could never bite.
    s.maxLabelValueLength = parseInteger(raw, 1, 64 * 1024);
  },
  request_duration_buckets: (s, raw) => {
    s.requestDurationBuckets = parseBuckets(raw);
  },
  native_histograms: (s, raw) => {
    s.nativeHistograms = parseNames(raw);
  },
  native_histogram_schema: (s, raw) => {
    const n = /^-?\d+$/.test(raw.value) ? Number(raw.value) : NaN;
    if (!(n >= MIN_SCHEMA && n <= MAX_SCHEMA))
      fail(raw, `is not an integer from ${MIN_SCHEMA} to ${MAX_SCHEMA}`);
    s.nativeHistogramSchema = n;
  },
  native_histogram_max_buckets: (s, raw) => {
    // OpenTelemetry's exponential aggregation takes no fewer than 2.
    s.nativeHistogramMaxBuckets = parseInteger(raw, 2, 16_384);
  },
};

const ENV_SWITCH_KEY = "enable_envvars_config";

// TorchServe keys that may sit in a shared config.properties; accepted and ignored, never warned about.
const IGNORED_TORCHSERVE_KEYS = [
  "management_address",
  "grpc_inference_address",
  "grpc_management_address",
  "grpc_inference_port",
  "grpc_management_port",
  "grpc_inference_max_connection_age_ms",
  "grpc_management_max_connection_age_ms",
  "grpc_inference_max_connection_age_grace_ms",
  "grpc_management_max_connection_age_grace_ms",
  "enable_grpc_ssl",
  "model_store",
  "workflow_store",
  "load_models",
  "model_snapshot",
  "snapshot_store",
  "default_workers_per_model",
  "unregister_model_timeout",
  "number_of_netty_threads",
  "netty_client_threads",
  "async_logging",
  "debug",
  "blacklist_env_vars",
  "cors_allowed_origin",
  "cors_allowed_methods",
  "cors_allowed_headers",
  "decode_input_request",
  "keystore",
  "keystore_pass",
  "keystore_type",
  "max_request_size",
  "max_response_size",
  "limit_max_image_pixels",
  "default_service_handler",
  "service_envelope",
  "model_server_home",
  "prefer_direct_buffer",
  "allowed_urls",
  "use_env_allowed_urls",
  "install_py_dep_per_model",
  "initial_worker_port",
  "initial_distribution_port",
  "cpp_log_config",
  "ts_open_inference_protocol",
  "token_expiration_min",
  "ts_header_key_sequence_id",
  "ts_header_key_sequence_start",
  "ts_header_key_sequence_end",
  "disable_token_authorization",
  "enable_model_api",
  "ipex_enable",
  "ipex_gpu_enable",
  "cpu_launcher_enable",
  "cpu_launcher_args",
  "use_native_io",
  "io_ratio",
  "system_metrics_cmd",
  "version",
  "vmargs",
  "plugins_path",
  // Written by TorchServe into its config snapshots, which users sometimes pass as --ts-config.
  "tsConfigFile",
  "NUM_WORKERS",
  "python",
];

const KNOWN_KEYS: readonly string[] = [...Object.keys(SETTERS), ENV_SWITCH_KEY, ...IGNORED_TORCHSERVE_KEYS];

/**
 * Resolves the settings: defaults, then config.properties `file`, then `TS_<KEY>` env vars when
 * `enable_envvars_config=true` (in the file, or `TS_ENABLE_ENVVARS_CONFIG=true`). Relative paths
 * (`file`, `metrics_config`, `certificate_file`, `private_key_file`) resolve against `cwd`, as in TorchServe.
 * @throws ConfigError when the file cannot be read or a value is invalid; unknown keys only warn.
 */
export function resolveSettings(opts: ResolveSettingsOptions): Settings {
  const cwd = opts.cwd ?? process.cwd();
  const env = opts.env ?? process.env;
  const { logger } = opts;
  const sourceFile = opts.file === undefined ? undefined : resolve(cwd, opts.file);

  const entries = sourceFile === undefined ? [] : readConfigFile(sourceFile);
  const fileValues = new Map(entries.map((entry) => [entry.key, fileValue(entry, sourceFile)]));
  warnUnknownKeys(entries, sourceFile, logger);

  const envEnabled = envVarsEnabled(fileValues.get(ENV_SWITCH_KEY), env);
  if (!envEnabled) warnIgnoredEnvVars(env, logger);

  const settings: Settings = {
    ...DEFAULT_SETTINGS,
    metricsAddress: { ...DEFAULT_SETTINGS.metricsAddress },
    inferenceAddress: { ...DEFAULT_SETTINGS.inferenceAddress },
    sourceFile,
  };
  const used = new Map<string, RawValue>();
  for (const [key, apply] of Object.entries(SETTERS)) {
    const raw = (envEnabled ? envValue(key, env) : undefined) ?? fileValues.get(key);
    if (raw === undefined) continue;
    used.set(key, raw);
    apply(settings, raw, { cwd, logger });
  }
  checkTls(settings, used, fileValues.has("keystore"));
  checkExpiry(settings, used);
  checkTorchServeDirs(settings, used);
  checkSeparateAddresses(settings, (key) => used.get(key)?.origin);
  return settings;
}

function readConfigFile(file: string): PropertyEntry[] {
  let text: string;
  try {
    // Java reads properties as ISO-8859-1; UTF-8 is identical for ASCII files and right for non-ASCII paths.
    text = readFileSync(file, "utf8");
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError(`cannot read the config file (${reason}); check --ts-config or TS_CONFIG_FILE`, {
      file,
    });
  }
  return parseProperties(text);
}

function fileValue(entry: PropertyEntry, file: string | undefined): RawValue {
  const value = entry.value.trim();
  return { value, origin: { file, line: entry.line, key: entry.key, value } };
}

function envValue(key: string, env: NodeJS.ProcessEnv): RawValue | undefined {
  const envVar = envVarName(key);
  const text = env[envVar];
  if (text === undefined) return undefined;
  const value = text.trim();
  return { value, origin: { envVar, key, value } };
}

function envVarName(key: string): string {
  return `TS_${key.toUpperCase()}`;
}

function envVarsEnabled(fromFile: RawValue | undefined, env: NodeJS.ProcessEnv): boolean {
  const switchedInFile = fromFile !== undefined && parseBoolean(fromFile);
  const fromEnv = envValue(ENV_SWITCH_KEY, env);
  const switchedInEnv = fromEnv !== undefined && parseBoolean(fromEnv);
  return switchedInFile || switchedInEnv;
}

function warnUnknownKeys(entries: PropertyEntry[], file: string | undefined, logger: Logger): void {
  for (const entry of entries) {
    if (KNOWN_KEYS.includes(entry.key)) continue;
    const suggestion = closestKey(entry.key);
    const hint = suggestion === undefined ? "" : `; did you mean ${suggestion}?`;
    logger.warn(
      `${describeOrigin({ file, line: entry.line })}: unknown key "${entry.key}" is ignored${hint}`,
    );
  }
}

// Setting TS_METRICS_MODE and seeing no effect is a classic TorchServe surprise; say why once.
function warnIgnoredEnvVars(env: NodeJS.ProcessEnv, logger: Logger): void {
  const ignored = Object.keys(SETTERS)
    .map(envVarName)
    .filter((name) => env[name] !== undefined);
  if (ignored.length === 0) return;
  logger.warn(
    `${ignored.join(", ")} ${ignored.length === 1 ? "is" : "are"} set but ignored: environment variables ` +
      `apply only with enable_envvars_config=true in config.properties or TS_ENABLE_ENVVARS_CONFIG=true`,
  );
}

function checkTls(settings: Settings, used: ReadonlyMap<string, RawValue>, keystoreSet: boolean): void {
  const listeners = [
    ["metrics_address", settings.metricsAddress],
    ["inference_address", settings.inferenceAddress],
  ] as const;
  for (const [key, address] of listeners) {
    if (address.protocol !== "https") continue;
    const missing = [
      settings.certificateFile === undefined ? "certificate_file" : undefined,
      settings.privateKeyFile === undefined ? "private_key_file" : undefined,
    ].filter((name) => name !== undefined);
    if (missing.length === 0) continue;
    // An https address only ever comes from the file or env, never from the defaults.
    const origin = used.get(key)?.origin ?? { key };
    const keystoreNote = keystoreSet
      ? " (keystore is not supported; export its certificate and key as PEM files)"
      : "";
    throw new ConfigError(
      `needs certificate_file and private_key_file (PEM files), but ${missing.join(" and ")} ` +
        `${missing.length === 1 ? "is" : "are"} not set; set ${missing.length === 1 ? "it" : "them"} or use http://${keystoreNote}`,
      origin,
    );
  }
}

// Host gauges are only refreshed every metric_time_interval; a shorter expiry would hide them.
function checkExpiry(settings: Settings, used: ReadonlyMap<string, RawValue>): void {
  const expiry = settings.seriesExpirySeconds;
  if (expiry === 0 || expiry >= 2 * settings.metricTimeInterval) return;
  const raw = used.get("series_expiry_seconds");
  throw new ConfigError(
    `is shorter than twice metric_time_interval (${settings.metricTimeInterval} s), so host metrics would vanish between samples`,
    raw?.origin ?? { key: "series_expiry_seconds" },
  );
}

function fail(raw: RawValue, problem: string): never {
  throw new ConfigError(problem, raw.origin);
}

function parseBoolean(raw: RawValue): boolean {
  const lower = raw.value.toLowerCase();
  if (lower === "true") return true;
  if (lower === "false") return false;
  return fail(raw, "is not a boolean; use true or false");
}

function parseChoice<T extends string>(raw: RawValue, choices: readonly T[]): T {
  const lower = raw.value.toLowerCase();
  const found = choices.find((choice) => choice === lower);
  return found ?? fail(raw, `is not one of ${choices.join(", ")}`);
}

function parseInteger(raw: RawValue, min: number, max: number): number {
  const n = /^\d+$/.test(raw.value) ? Number(raw.value) : NaN;
  if (!(n >= min && n <= max)) {
    const range =
      max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
    fail(raw, `is not ${range}`);
  }
  return n;
}

function parseInterval(raw: RawValue): number {
  const seconds = /^(?:\d+\.?\d*|\.\d+)$/.test(raw.value) ? Number(raw.value) : NaN;
  if (!(seconds > 0)) fail(raw, "is not a positive number of seconds (fractions such as 0.5 are allowed)");
  // Node fires a timer at once when its delay overflows 32 bits, which would sample in a busy loop.
  if (seconds * 1000 > MAX_TIMER_MS) {
    fail(
      raw,
      `is longer than ${Math.floor(MAX_TIMER_MS / 1000)} seconds, the longest interval a timer can wait`,
    );
  }
  return seconds;
}

/** Seconds, 0 allowed (no drain), up to an hour: a stop longer than that is no graceful stop. */
function parseDrainTimeout(raw: RawValue): number {
  const seconds = /^(?:\d+\.?\d*|\.\d+)$/.test(raw.value) ? Number(raw.value) : NaN;
  if (!(seconds >= 0 && seconds <= 3600)) fail(raw, "is not a number of seconds from 0 to 3600");
  return seconds;
}

/** A comma-separated list of strictly increasing, finite bucket bounds. */
function parseBuckets(raw: RawValue): number[] {
  const bounds = raw.value.split(",").map((b) => Number(b.trim()));
  const ok =
    bounds.length > 0 &&
    bounds.every((b, i) => Number.isFinite(b) && (i === 0 || b > (bounds[i - 1] ?? -Infinity)));
  if (!ok || raw.value.trim() === "")
    fail(raw, "is not a comma-separated list of increasing numbers of seconds");
  return bounds;
}

/** Resolves a path against the working directory (as TorchServe does) and insists that it is a readable file. */
function parseExistingFile(raw: RawValue, cwd: string): string | undefined {
  // An empty value, common in templated configs, means "not set".
  if (raw.value === "") return undefined;
  const path = resolve(cwd, raw.value);
  const where = isAbsolute(raw.value)
    ? ""
    : `; relative paths are resolved against the working directory ${cwd}`;
  try {
    if (!statSync(path).isFile()) fail(raw, `names ${path}, which is not a file${where}`);
    accessSync(path, constants.R_OK);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    fail(raw, `names no readable file (${reason})${where}`);
  }
  return path;
}

/** TorchServe's own default metric_time_interval (ConfigManager.getMetricTimeInterval). */
const TORCHSERVE_DEFAULT_INTERVAL = 60;

/**
 * The metric_time_interval of the followed TorchServe's config.properties at `path` (named by
 * `raw`, torchserve_config), read as TorchServe reads it: Integer.parseInt of the value, 60 when
 * the file does not set it. A file that cannot be read or a value TorchServe would refuse is a
 * config error naming torchserve_config, the file and the value.
 */
function readTorchServeInterval(raw: RawValue, path: string): number {
  let entries: PropertyEntry[];
  try {
    entries = parseProperties(readFileSync(path, "utf8"));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return fail(raw, `names ${path}, which cannot be read as TorchServe's config.properties (${reason})`);
  }
  const entry = entries.find((e) => e.key === "metric_time_interval");
  if (entry === undefined) return TORCHSERVE_DEFAULT_INTERVAL;
  // Integer.parseInt: an optional sign and digits, nothing else (no spaces, no fraction).
  const seconds = /^\+?\d{1,10}$/.test(entry.value) ? Number(entry.value) : NaN;
  if (!(seconds > 0 && seconds * 1000 <= MAX_TIMER_MS)) {
    throw new ConfigError(
      `is not a positive whole number of seconds as TorchServe reads it (read for torchserve_config=${raw.value})`,
      { file: path, line: entry.line, key: entry.key, value: entry.value },
    );
  }
  return seconds;
}

/**
 * A directory TorchServe writes its logs into: resolved against the working directory; it may not
 * exist yet (TorchServe creates it at start), but if something is there it must be a directory.
 */
function parseDirectory(raw: RawValue, cwd: string): string | undefined {
  if (raw.value === "") return undefined;
  const path = resolve(cwd, raw.value);
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch {
    return path;
  }
  if (!stats.isDirectory()) {
    fail(raw, `names ${path}, which is a ${nonRegularKind(stats) ?? "regular file"}, not a directory`);
  }
  return path;
}

/** A comma-separated list of metric names (possibly empty). */
function parseNames(raw: RawValue): string[] {
  const names = raw.value
    .split(",")
    .map((n) => n.trim())
    .filter((n) => n !== "");
  const bad = names.find((n) => !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(n));
  if (bad !== undefined) fail(raw, `holds ${JSON.stringify(bad)}, which is not a metric name`);
  return names;
}

// torchserve_metrics_dir alone would follow the metric files but no access log: say so.
function checkTorchServeDirs(settings: Settings, used: ReadonlyMap<string, RawValue>): void {
  if (settings.torchserveMetricsDir === undefined || settings.torchserveLogDir !== undefined) return;
  throw new ConfigError(
    "needs torchserve_log_dir too (TorchServe's LOG_LOCATION, where access_log.log is); " +
      "torchserve_metrics_dir only says where the metric files are when they are elsewhere",
    used.get("torchserve_metrics_dir")?.origin ?? { key: "torchserve_metrics_dir" },
  );
}

/**
 * Refuses one address for both APIs: the second listen would fail after the first had opened
 * (`EADDRINUSE`, exit 1), so it is a configuration error found before anything listens. Equal
 * hosts clash on an equal port, and so does a wildcard host (`0.0.0.0`, `::`) with any host.
 * `originOf` says where a key's value was set (a file line, an env var), undefined for a default.
 * @throws ConfigError naming both keys and the address.
 */
export function checkSeparateAddresses(
  settings: Settings,
  originOf: (key: string) => ConfigOrigin | undefined = () => undefined,
): void {
  const inferenceEnabled = settings.enableInferenceApi ?? settings.models.length > 0;
  if (!settings.enableMetricsApi || !inferenceEnabled) return;
  const metrics = settings.metricsAddress;
  const inference = settings.inferenceAddress;
  // Port 0 asks the OS for a free port: two of them never clash.
  if (metrics.port === 0 || metrics.port !== inference.port) return;
  const wildcard = (host: string): boolean => host === "0.0.0.0" || host === "::" || host === "";
  const sameHost = metrics.host.toLowerCase() === inference.host.toLowerCase();
  if (!sameHost && !wildcard(metrics.host) && !wildcard(inference.host)) return;
  const metricsOrigin = originOf("metrics_address");
  const inferenceOrigin = originOf("inference_address");
  // The error sits on a key that was set (the other may be its default); the inference one first.
  const [key, other] =
    inferenceOrigin !== undefined || metricsOrigin === undefined
      ? (["inference_address", "metrics_address"] as const)
      : (["metrics_address", "inference_address"] as const);
  const origin = (key === "inference_address" ? inferenceOrigin : metricsOrigin) ?? {
    file: settings.sourceFile,
    key,
    value: formatAddress(key === "inference_address" ? inference : metrics),
  };
  const otherOrigin = key === "inference_address" ? metricsOrigin : inferenceOrigin;
  const otherAddress = formatAddress(key === "inference_address" ? metrics : inference);
  const otherWhere = otherOrigin === undefined ? "its default" : describeOrigin(otherOrigin) || "its setting";
  throw new ConfigError(
    `uses port ${inference.port} on the same address as ${other}=${otherAddress} (${otherWhere}); ` +
      "the metrics API and the inference API need different ports: change one of them",
    { file: settings.sourceFile, ...origin, key },
  );
}

function formatAddress(address: { protocol: string; host: string; port: number }): string {
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  return `${address.protocol}://${host}:${address.port}`;
}

/** Refuses a path that exists and is not a regular file; one that does not exist yet may appear later. */
function checkFollowable(raw: RawValue, path: string): void {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch {
    // Missing, or not readable now: the follower waits for it and says why it cannot read it.
    return;
  }
  const kind = nonRegularKind(stats);
  if (kind !== undefined) {
    fail(raw, `names ${path}, which is a ${kind}; only regular files can be followed`);
  }
}

/** The known key closest to `key` within edit distance 2, case ignored, or undefined. */
function closestKey(key: string): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of KNOWN_KEYS) {
    const distance = editDistance(lower, candidate.toLowerCase());
    // Strictly less: on a tie the earlier key wins, and our own keys come first.
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Optimal-string-alignment distance: Levenshtein plus adjacent transpositions, the commonest typo. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(i === 0 ? j : 0);
    rows.push(row);
  }
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] ?? [];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, at(i - 2, j - 2) + 1);
      row[j] = d;
    }
  }
  return at(a.length, b.length);
}
