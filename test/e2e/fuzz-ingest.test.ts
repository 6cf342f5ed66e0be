import { expect } from "chai";
import fc from "fast-check";
import { spawn } from "node:child_process";
import { request as httpRequest } from "node:http";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadDefaultCatalog } from "../../src/catalog/load.js";
import { DEFAULT_BUCKETS } from "../../src/catalog/types.js";
import type { MetricsFormat } from "../../src/config/types.js";
import type { MemoryLogger } from "../../src/log.js";
import type { MetricsService } from "../../src/service.js";
import { extraMetrics, REJECTED_LINES } from "../../src/telemetry/extra-metrics.js";
import { DEFAULT_HISTOGRAM_GAUGES, planGaugeHistograms } from "../../src/telemetry/gauge-histograms.js";
import {
  APPLIED_LINES,
  EVENT_LOOP_DELAY_MAX,
  EVENT_LOOP_DELAY_P50,
  EVENT_LOOP_DELAY_P99,
  PROCESS_CPU,
  PROCESS_MAX_FDS,
  PROCESS_OPEN_FDS,
  PROCESS_RESIDENT_MEMORY,
  PROCESS_START_TIME,
} from "../../src/telemetry/lifecycle-metrics.js";
import { OPENMETRICS_CONTENT_TYPE } from "../../src/exposition/openmetrics-text.js";
import { request } from "../support/http.js";
import {
  openMetricsSeries,
  parseOpenMetrics,
  textSeries,
  type ParsedFamily,
} from "../support/openmetrics.js";
import {
  labelNameArbitrary,
  labelValueArbitrary,
  markerPrefixArbitrary,
  metricLineTextArbitrary,
  metricNameArbitrary,
  valueTextArbitrary,
} from "../support/metric-lines.js";
import { until } from "../support/net.js";
import { startTestService } from "../support/service.js";
import { tempDir } from "../support/temp.js";
import { requirePythonModule, requireTool } from "../support/tools.js";

// Each run is a batch of lines through all four inputs, then one scrape and three checks: about
// 0.55 s, most of it waiting for the file follower's 500 ms poll. FUZZ_INGEST_RUNS=100 hunts longer.
const RUNS = Number(process.env.FUZZ_INGEST_RUNS ?? 10);

// Label values a valid line can carry, the exposition's escapes and beyond-ASCII included.
const printableValue: fc.Arbitrary<string> = fc.string({
  unit: fc.constantFrom("a", "Z", "0", " ", '"', "\\", "é", "✓", "𝄞", "{", "}", "=", "#", ":", "-", "\u00a0"),
  maxLength: 12,
});
const hostileValue: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: printableValue },
  { weight: 2, arbitrary: labelValueArbitrary },
);

// Dimensions of either kind: the declared model metrics' own (hostile values in them), or any.
const modelDimensions = fc.tuple(hostileValue, hostileValue).map(([model, level]): [string, string][] => [
  ["ModelName", model],
  ["Level", level],
]);
const anyDimensions = fc.array(fc.tuple(labelNameArbitrary, hostileValue), { maxLength: 3 });

// A name auto-detection has not seen yet, most likely.
const freshName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_]{0,10}$/);

const reservedDimensions = fc
  .tuple(
    fc.constantFrom("__name__", "__x", "le", "quantile", "otel_metric_overflow", "a__b"),
    hostileValue,
    modelDimensions,
  )
  .map(([label, value, rest]): [string, string][] => [[label, value], ...rest]);

// Names that render alike, in either format: case and underscores (OpenTelemetry naming
// snake-cases), `_total` and a histogram's suffixes, the `_2` that tells colliding names apart,
// names of the OpenTelemetry exposition's own families.
const collidingName = fc.constantFrom(
  "FooBar",
  "foo_bar",
  "foo_bar_2",
  "Foo",
  "foo_total",
  "foo_total_2",
  "Q",
  "q_bucket",
  "Q_bucket",
  "q_bucket_2",
  "q_2_bucket",
  "q_count",
  "handler_time",
  "prediction_time",
  "serve_model_handler_time",
  "serve_requests_2xx_total",
  "requests_2xx",
  "host_cpu_utilization",
  "target_info",
);

// The service's own metrics with the dimensions they declare: a forged line that gets this far
// fails only for what it is, not for a missing label.
const serviceMetrics = [
  ...loadDefaultCatalog().metrics.filter((m) => m.section === "ts_metrics"),
  ...extraMetrics(DEFAULT_BUCKETS),
];
const forgedMetric = fc
  .constantFrom(...serviceMetrics)
  .chain((m) => {
    const names = m.dimensions.filter((d) => d !== "Hostname" && d !== "hostname");
    return fc.tuple(fc.constant(m.name), fc.tuple(...names.map(() => hostileValue)), fc.constant(names));
  })
  .map(([name, values, names]) => ({
    name,
    dimensions: names.map((d, i): [string, string] => [d, values[i] ?? ""]),
  }));

/**
 * A line shaped well enough to reach the ingest's checks and, often, the exposition: one or two
 * hostile parts (a reserved or foreign name, a control character, a long or quoting value, a
 * histogram's sample name) in an otherwise valid line. Wholly random lines mostly stop at the parser.
 */
const reachingLine: fc.Arbitrary<string> = fc
  .record({
    prefix: fc.oneof(
      { weight: 4, arbitrary: fc.constant("") },
      { weight: 1, arbitrary: markerPrefixArbitrary },
    ),
    metric: fc.oneof(
      fc.record({ name: fc.constantFrom("HandlerTime", "PredictionTime"), dimensions: modelDimensions }),
      forgedMetric,
      fc.record({
        name: fc.oneof(freshName, metricNameArbitrary, collidingName),
        dimensions: fc.oneof(modelDimensions, anyDimensions),
      }),
      // A fresh name, so auto-detection would create it, with a label the exposition reserves.
      fc.record({ name: freshName, dimensions: reservedDimensions }),
    ),
    unit: fc.constantFrom("Milliseconds", "ms", "Count", "Percent"),
    value: fc.oneof(
      { weight: 2, arbitrary: fc.double({ noNaN: true, min: 0, max: 1e4 }).map(String) },
      { weight: 1, arbitrary: valueTextArbitrary },
    ),
    type: fc.constantFrom("", "|#type:COUNTER", "|#type:GAUGE", "|#type:HISTOGRAM"),
    hostname: fc.oneof({ weight: 4, arbitrary: fc.constant("h") }, { weight: 1, arbitrary: hostileValue }),
  })
  .map(
    ({ prefix, metric, unit, value, type, hostname }) =>
      `${prefix}[METRICS]${metric.name}.${unit}:${value}|#${metric.dimensions.map(([k, v]) => `${k}:${v}`).join(",")}` +
      `${type}|#hostname:${hostname},1699061430,r1`,
  );

/** A line as a hostile or careless writer may print it: mostly one that reaches the checks, else junk. */
const fuzzLine: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: reachingLine },
  { weight: 2, arbitrary: metricLineTextArbitrary },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 40 }).map((s) => `[METRICS]${s}`) },
);

// The inputs that deliver lines some time after they are written.
const SENTINEL_SOURCES = ["stdout", "stderr", "file"];

/** What one run writes through each input. */
interface Batch {
  worker: { stream: "stdout" | "stderr"; text: string }[];
  file: string[];
  http: string[];
  api: string[];
}

const batchArbitrary: fc.Arbitrary<Batch> = fc.record({
  worker: fc.array(
    fc.record({ stream: fc.constantFrom("stdout" as const, "stderr" as const), text: fuzzLine }),
    {
      maxLength: 8,
    },
  ),
  file: fc.array(fuzzLine, { maxLength: 8 }),
  http: fc.array(fuzzLine, { maxLength: 8 }),
  api: fc.array(fuzzLine, { maxLength: 8 }),
});

// ---------------------------------------------------------------------------------------------
// An exposition reader of its own, stricter than the parsers it runs beside: it keeps each
// family's text for the before/after comparison and checks what the parsers let through.

interface Sample {
  name: string;
  labels: [string, string][];
  value: number;
  text: string;
}

interface Family {
  name: string;
  type: string | undefined;
  helps: number;
  types: number;
  samples: Sample[];
  /** Its HELP, UNIT, TYPE and sample lines, as scraped. */
  text: string;
}

interface Exposition {
  families: Map<string, Family>;
  problems: string[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const FLOAT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
// eslint-disable-next-line no-control-regex -- a raw control character in a label value is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Text fit for a failure message: runs of one character written as a count. */
function shorten(text: string): string {
  return text.replace(/(.)\1{15,}/gsu, (run, c: string) => `${c}{×${run.length / c.length}}`);
}

function quoteLine(text: string): string {
  const short = shorten(text);
  return JSON.stringify(short.length > 300 ? `${short.slice(0, 300)}…` : short);
}

function parseValue(token: string): number | undefined {
  if (token === "+Inf") return Infinity;
  if (token === "-Inf") return -Infinity;
  if (token === "NaN") return NaN;
  return FLOAT.test(token) ? Number(token) : undefined;
}

/** One sample line, or why it is not one. */
function parseSample(line: string): Sample | string {
  const name = METRIC_NAME.exec(line)?.[0];
  if (name === undefined) return "no metric name";
  let at = name.length;
  const labels: [string, string][] = [];
  if (line[at] === "{") {
    at++;
    while (line[at] !== "}") {
      const label = LABEL_NAME.exec(line.slice(at))?.[0];
      if (label === undefined) return `no label name at column ${at + 1}`;
      at += label.length;
      if (line.slice(at, at + 2) !== '="') return `no =" after label ${label}`;
      at += 2;
      let value = "";
      for (;;) {
        const c = line[at];
        if (c === undefined) return `label ${label}: value not closed`;
        at++;
        if (c === '"') break;
        if (c === "\\") {
          const escaped = line[at];
          at++;
          if (escaped === "\\" || escaped === '"') value += escaped;
          else if (escaped === "n") value += "\n";
          else return `label ${label}: escape \\${escaped ?? ""} is not one of \\\\ \\" \\n`;
        } else if (CONTROL.test(c)) {
          return `label ${label}: raw control character U+${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
        } else value += c;
      }
      labels.push([label, value]);
      if (line[at] === ",") at++;
      else if (line[at] !== "}") return `no , or } after label ${label}`;
    }
    at++;
  }
  if (line[at] !== " ") return "no space before the value";
  const [valueToken, timestamp, ...rest] = line.slice(at + 1).split(" ");
  const value = parseValue(valueToken ?? "");
  if (value === undefined) return `value ${JSON.stringify(valueToken)} is not a number`;
  if (rest.length > 0 || (timestamp !== undefined && !/^-?\d+$/.test(timestamp)))
    return "junk after the value";
  return { name, labels, value, text: line };
}

/** Whether a sample of this name belongs to the family (a histogram's `_bucket`, `_count`, `_sum` do). */
function belongsTo(family: Family, sample: string): boolean {
  if (sample === family.name) return family.type !== "histogram";
  const suffixes =
    family.type === "histogram"
      ? ["_bucket", "_count", "_sum"]
      : family.type === "summary"
        ? ["_count", "_sum"]
        : [];
  return suffixes.some((s) => sample === family.name + s);
}

/** Reads a scrape into families, and lists every way it breaks the text format or is inconsistent. */
function readExposition(text: string): Exposition {
  const families = new Map<string, Family>();
  const problems: string[] = [];
  const closed = new Set<string>();
  let current: Family | undefined;
  const open = (name: string, line: string): Family => {
    let family = families.get(name);
    if (family === undefined) {
      family = { name, type: undefined, helps: 0, types: 0, samples: [], text: "" };
      families.set(name, family);
    }
    if (family !== current) {
      if (closed.has(name))
        problems.push(`family ${name} announced again after other families: ${quoteLine(line)}`);
      if (current !== undefined) closed.add(current.name);
      current = family;
    }
    return family;
  };
  if (text !== "" && !text.endsWith("\n")) problems.push("the text does not end with a newline");
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const comment = /^# (HELP|TYPE|UNIT) (\S+)(?: (.*))?$/.exec(line);
    if (comment !== null) {
      const [, keyword, name = ""] = comment;
      const family = open(name, line);
      family.text += `${line}\n`;
      if (keyword === "HELP") family.helps++;
      if (keyword === "TYPE") {
        family.types++;
        family.type = comment[3];
        if (family.samples.length > 0) problems.push(`TYPE of ${name} after its samples`);
      }
      continue;
    }
    if (line.startsWith("#")) continue;
    const sample = parseSample(line);
    if (typeof sample === "string") {
      problems.push(`unreadable sample (${sample}): ${quoteLine(line)}`);
      continue;
    }
    if (current === undefined || !belongsTo(current, sample.name)) {
      problems.push(
        `sample of no family announced before it (last: ${current?.name ?? "none"}): ${quoteLine(line)}`,
      );
      continue;
    }
    current.samples.push(sample);
    current.text += `${line}\n`;
  }

  const series = new Set<string>();
  for (const family of families.values()) {
    if (family.helps !== 1 || family.types !== 1) {
      problems.push(
        `family ${family.name} has ${family.helps} HELP and ${family.types} TYPE lines, not one each`,
      );
    }
    for (const sample of family.samples) {
      const names = sample.labels.map(([n]) => n);
      if (new Set(names).size !== names.length)
        problems.push(`repeated label name: ${quoteLine(sample.text)}`);
      if (names.some((n) => n.startsWith("__")))
        problems.push(`reserved label name: ${quoteLine(sample.text)}`);
      const key = `${sample.name}${JSON.stringify([...sample.labels].sort(([a], [b]) => (a < b ? -1 : 1)))}`;
      if (series.has(key)) problems.push(`duplicate series: ${quoteLine(sample.text)}`);
      series.add(key);
    }
    if (family.type === "histogram") problems.push(...histogramProblems(family));
  }
  return { families, problems };
}

/** Buckets in increasing `le` order, cumulative, ending at +Inf equal to `_count`; `_sum` present. */
function histogramProblems(family: Family): string[] {
  const problems: string[] = [];
  const key = (labels: [string, string][]): string =>
    JSON.stringify(labels.filter(([n]) => n !== "le").sort(([a], [b]) => (a < b ? -1 : 1)));
  const buckets = new Map<string, Sample[]>();
  const counts = new Map<string, number>();
  const sums = new Set<string>();
  for (const sample of family.samples) {
    const hasLe = sample.labels.some(([n]) => n === "le");
    if (sample.name.endsWith("_bucket") !== hasLe)
      problems.push(`le label misplaced: ${quoteLine(sample.text)}`);
    const k = key(sample.labels);
    if (sample.name.endsWith("_bucket")) buckets.set(k, [...(buckets.get(k) ?? []), sample]);
    else if (sample.name.endsWith("_count")) counts.set(k, sample.value);
    else sums.add(k);
  }
  for (const [k, list] of buckets) {
    const series = `${family.name}${k}`;
    let previousBound = -Infinity;
    let previousCount = 0;
    for (const bucket of list) {
      const bound = parseValue(bucket.labels.find(([n]) => n === "le")?.[1] ?? "");
      if (bound === undefined || !(bound > previousBound))
        problems.push(`${series}: le out of order at ${quoteLine(bucket.text)}`);
      if (bucket.value < previousCount)
        problems.push(`${series}: buckets not cumulative at ${quoteLine(bucket.text)}`);
      previousBound = bound ?? previousBound;
      previousCount = bucket.value;
    }
    if (previousBound !== Infinity) problems.push(`${series}: no +Inf bucket last`);
    if (counts.get(k) !== previousCount)
      problems.push(`${series}: _count ${counts.get(k)} is not the +Inf bucket ${previousCount}`);
    if (!sums.has(k)) problems.push(`${series}: no _sum`);
  }
  for (const k of counts.keys())
    if (!buckets.has(k)) problems.push(`${family.name}${k}: _count without buckets`);
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The real parsers.

function runWithInput(
  command: string,
  args: string[],
  input: string,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, PYTHONIOENCODING: "utf-8" },
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, output }));
    child.stdin.on("error", () => undefined); // a parser that quits early closes its stdin
    child.stdin.end(input);
  });
}

// Reads bytes, not text: Python's text mode turns a raw "\r" into "\n" and would hide it.
const PYTHON_PARSE = [
  "import sys",
  "from prometheus_client.parser import text_string_to_metric_families",
  "text = sys.stdin.buffer.read().decode('utf-8')",
  "print(sum(len(f.samples) for f in text_string_to_metric_families(text)))",
].join("\n");

/** prometheus_client's parse of the text: the sample count, or its error. */
async function pythonSampleCount(python: string, text: string): Promise<number | string> {
  const { code, output } = await runWithInput(python, ["-c", PYTHON_PARSE], text);
  return code === 0
    ? Number(output.trim())
    : `prometheus_client refused the text (exit ${code}): ${output.slice(-2000)}`;
}

/** promtool's parse: undefined when it parses (exit 0, or 3 for lint findings only), else its error. */
async function promtoolError(promtool: string, text: string): Promise<string | undefined> {
  const { code, output } = await runWithInput(promtool, ["check", "metrics"], text);
  return code === 0 || code === 3
    ? undefined
    : `promtool check metrics exited ${code}: ${output.slice(-2000)}`;
}

/** Prometheus 2.42's default Accept (scrape/scrape.go): OpenMetrics first. */
const PROMETHEUS_ACCEPT =
  "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/**
 * Scrapes `url` as Prometheus does by default and says what is wrong: not OpenMetrics, refused by
 * prometheus_client's OpenMetrics parser, or samples other than those of `text`, the text scrape
 * just before (but Requests2XX, which counts the scrapes).
 */
async function openMetricsDisagreement(
  python: string,
  url: string,
  text: string,
): Promise<string | undefined> {
  const res = await getWithAccept(url, PROMETHEUS_ACCEPT);
  if (res.contentType !== OPENMETRICS_CONTENT_TYPE) return `an OpenMetrics scrape got ${res.contentType}`;
  let families: ParsedFamily[];
  try {
    families = parseOpenMetrics(python, res.body);
  } catch (err) {
    return (err as Error).message;
  }
  const scrapes = (s: string): boolean => !s.startsWith("Requests2XX{");
  const fromOpenMetrics = openMetricsSeries(families).filter(scrapes);
  const fromText = textSeries(text).filter(scrapes);
  const onlyOpenMetrics = fromOpenMetrics.filter((s) => !fromText.includes(s));
  const onlyText = fromText.filter((s) => !fromOpenMetrics.includes(s));
  if (onlyOpenMetrics.length === 0 && onlyText.length === 0) return undefined;
  return (
    `OpenMetrics and text samples differ: only in OpenMetrics ${shorten(JSON.stringify(onlyOpenMetrics))}, ` +
    `only in text ${shorten(JSON.stringify(onlyText))}`
  );
}

function getWithAccept(url: string, accept: string): Promise<{ contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { Accept: accept }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({ contentType: res.headers["content-type"] ?? "", body: Buffer.concat(chunks).toString() }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// What lines must never touch.

/**
 * Families that move without breaking the guard: lines move the counters of lines applied and
 * rejected, and the service's own process metrics move on their own timer. Same names in both formats.
 */
const UNGUARDED: ReadonlySet<string> = new Set([
  REJECTED_LINES,
  APPLIED_LINES,
  PROCESS_CPU,
  PROCESS_RESIDENT_MEMORY,
  PROCESS_START_TIME,
  PROCESS_OPEN_FDS,
  PROCESS_MAX_FDS,
  EVENT_LOOP_DELAY_P50,
  EVENT_LOOP_DELAY_P99,
  EVENT_LOOP_DELAY_MAX,
]);

/** The families no line may change, and the Requests2XX family, as `format` names them. */
function guardedFamilies(format: MetricsFormat): { guarded: (name: string) => boolean; requests2xx: string } {
  if (format === "otel") {
    // Model metrics, declared or auto-detected, are exposed as serve_model_*; all else is the
    // service's, but for the histograms that every value of a model gauge feeds (histogram_gauges).
    const derived = new Set(
      planGaugeHistograms(
        loadDefaultCatalog().metrics,
        DEFAULT_HISTOGRAM_GAUGES,
        DEFAULT_BUCKETS,
      ).histograms.map((h) => h.definition.name),
    );
    return {
      guarded: (name) => !name.startsWith("serve_model_") && !UNGUARDED.has(name) && !derived.has(name),
      requests2xx: "serve_requests_2xx_total",
    };
  }
  const names = new Set([
    ...loadDefaultCatalog()
      .metrics.filter((m) => m.section === "ts_metrics")
      .map((m) => m.name),
    ...extraMetrics(DEFAULT_BUCKETS).map((m) => m.name),
  ]);
  for (const name of UNGUARDED) names.delete(name);
  return { guarded: (name) => names.has(name), requests2xx: "Requests2XX" };
}

/** How the guarded families moved from `before` to `after` beyond `responses` more 2XX responses. */
function guardedChanges(
  format: MetricsFormat,
  before: Exposition,
  after: Exposition,
  responses: number,
): string[] {
  const { guarded, requests2xx } = guardedFamilies(format);
  const problems: string[] = [];
  const names = new Set([...before.families.keys(), ...after.families.keys()].filter(guarded));
  for (const name of names) {
    const was = before.families.get(name);
    const is = after.families.get(name);
    if (name === requests2xx && was !== undefined && is !== undefined) {
      const total = (f: Family): number => f.samples.reduce((sum, s) => sum + s.value, 0);
      const withoutValues = (f: Family): string => f.text.replace(/ [^ \n]+\n/g, "\n");
      if (withoutValues(was) !== withoutValues(is) || total(is) - total(was) !== responses) {
        problems.push(
          `${name} moved beyond the test's own ${responses} responses:\n${was.text}→\n${is.text}`,
        );
      }
    } else if (was?.text !== is?.text) {
      problems.push(
        `guarded family ${name} changed:\n${was?.text ?? "(absent)\n"}→\n${is?.text ?? "(absent)\n"}`,
      );
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------

describe("fuzzing every [METRICS] line input of a running service", function () {
  this.timeout(Math.max(60_000, RUNS * 2_000));
  let promtool: string;
  let python3: string;
  // Lines POSTed or recorded, and how many of them were applied: the fuzz must reach the
  // exposition, not stop at the parser.
  const applied = { accepted: 0, offered: 0 };

  before(function () {
    promtool = requireTool(this, "promtool");
    python3 = requirePythonModule(this, "prometheus_client.parser", "prometheus-client");
  });

  for (const format of ["torchserve", "otel"] as const) {
    for (const autoDetect of [false, true]) {
      // Without auto-detection the lines fill the two declared model metrics: a small cap makes
      // them overflow, so the overflow series meet the fuzz too.
      const maxSeries = autoDetect ? undefined : 6;
      it(
        `metrics_format=${format}, model_metrics_auto_detect=${autoDetect}` +
          `${maxSeries === undefined ? "" : `, max_series_per_metric=${maxSeries}`}: worker stdout/stderr, a followed file, ` +
          `POST /metric-lines and recordMetricLine leave a scrape that parses, is consistent, and moved only in model metrics`,
        async () => {
          const dir = tempDir("fuzz-ingest-");
          const workerLines = join(dir, "worker-lines.jsonl");
          const followed = join(dir, "model_log.log");
          writeFileSync(workerLines, "");
          writeFileSync(followed, "");
          const { service, url, logger } = await startTestService(
            {
              metricsFormat: format,
              modelMetricsAutoDetect: autoDetect,
              // Each run's store is also read as OpenMetrics (TorchServe naming), which must agree.
              openMetrics: format === "torchserve",
              ...(maxSeries === undefined ? {} : { maxSeriesPerMetric: maxSeries }),
              metricLogFiles: [followed],
              // One host sample at start and no more, so the system families hold still.
              metricTimeInterval: 3600,
              inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
              models: [
                {
                  model: "fuzz",
                  version: "1",
                  isDefault: true,
                  workers: 1,
                  url: undefined,
                  command: `LW_LINES_FILE=${workerLines} node test/fixtures/workers/line-worker.js --port {port}`,
                },
              ],
            },
            { workerTimings: { stopGraceMs: 500 } },
          );
          try {
            await service.workersReady();
            await fuzz(service, { format, url, workerLines, followed, logger });
          } finally {
            await service.stop();
          }
        },
      );
    }
  }

  it("applied some of the fuzzed lines: the checks above saw lines reach the exposition, not only the parser", function () {
    if (applied.offered === 0) this.skip(); // the services above did not run (--grep)
    // Summed over the four services: a run of lines may be all refused, every run together not.
    expect(applied.accepted, `lines applied of ${applied.offered} posted or recorded`).to.be.greaterThan(0);
  });

  async function fuzz(
    service: MetricsService,
    at: { format: MetricsFormat; url: string; workerLines: string; followed: string; logger: MemoryLogger },
  ): Promise<void> {
    const scrape = async (): Promise<{ text: string; exposition: Exposition }> => {
      const res = await request(at.url);
      expect(res.status, res.body.slice(0, 500)).to.equal(200);
      return { text: res.body, exposition: readExposition(res.body) };
    };
    // Lines travel in order on each stream, so a sentinel seen means every line before it was read.
    // Each source has one series, made before the fuzz so that the series cap cannot refuse it; a
    // run sets it to the run's number.
    const sentinel = (source: string, run: number): string =>
      `[METRICS]PredictionTime.Milliseconds:${run}|#ModelName:sentinel-${source},Level:Model|#hostname:h,1699061430`;
    const sentinelsAt = async (run: number): Promise<boolean> => {
      const text = await service.scrape();
      return SENTINEL_SOURCES.every((source) =>
        new RegExp(`\\{ModelName="sentinel-${source}",Level="Model",Hostname="h",?\\} ${run}(\\.0)?\n`).test(
          text,
        ),
      );
    };
    for (const source of SENTINEL_SOURCES)
      expect(service.recordMetricLine(sentinel(source, 0))).to.deep.equal({ ok: true });
    await until(() => sentinelsAt(0), "the sentinel series");
    // Two scrapes first, so that Requests2XX has its series before the first comparison.
    await scrape();
    let before = await scrape();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(batchArbitrary, async (batch) => {
        run++;
        applied.offered += batch.http.length + batch.api.length;
        const toWorker = [
          ...batch.worker,
          { stream: "stdout", text: sentinel("stdout", run) },
          { stream: "stderr", text: sentinel("stderr", run) },
        ];
        appendFileSync(at.workerLines, toWorker.map((l) => `${JSON.stringify(l)}\n`).join(""));
        appendFileSync(at.followed, [...batch.file, sentinel("file", run)].map((l) => `${l}\n`).join(""));
        const posted = await request(`${service.inferenceUrl ?? ""}/metric-lines`, {
          method: "POST",
          body: batch.http.join("\n"),
        });
        expect(posted.status, posted.body).to.equal(200);
        applied.accepted += (JSON.parse(posted.body) as { accepted: number }).accepted;
        for (const line of batch.api) if (service.recordMetricLine(line).ok) applied.accepted++;
        await until(
          () => sentinelsAt(run),
          `run ${run}'s sentinel lines from the worker and the followed file`,
        );

        const after = await scrape();
        const [python, promtoolFailure, openMetricsFailure] = await Promise.all([
          pythonSampleCount(python3, after.text),
          promtoolError(promtool, after.text),
          at.format === "torchserve" ? openMetricsDisagreement(python3, at.url, after.text) : undefined,
        ]);
        const problems = [
          ...after.exposition.problems,
          ...(typeof python === "string" ? [python] : []),
          ...(promtoolFailure === undefined ? [] : [promtoolFailure]),
          ...(openMetricsFailure === undefined ? [] : [openMetricsFailure]),
          // The scrape before answered one 2XX, the POST another, the previous run's OpenMetrics scrape a third.
          ...guardedChanges(
            at.format,
            before.exposition,
            after.exposition,
            at.format === "torchserve" && run > 1 ? 3 : 2,
          ),
        ];
        const ours = [...after.exposition.families.values()].reduce((n, f) => n + f.samples.length, 0);
        if (typeof python === "number" && python !== ours) {
          problems.push(`prometheus_client read ${python} samples, this test's reader ${ours}`);
        }
        before = after;
        if (problems.length > 0) {
          throw new Error(
            `after run ${run}:\n${problems.join("\n")}\nits lines: ${shorten(JSON.stringify(batch))}`,
          );
        }
      }),
      // The service keeps what earlier runs wrote, so a shrunk input would not reproduce a failure
      // alone: report the first failing batch (the checks after each run name the culprit).
      { numRuns: RUNS, endOnFailure: true },
    );
    // Every input delivered fuzzed lines to the ingest, not only the sentinels: each logs its first
    // rejections (the rejected-line counter may have overflowed into one series).
    for (const source of ["worker", "file", "http"]) {
      expect(
        at.logger.lines.some((l) => l.startsWith(`WARN metric lines (${source}): `)),
        `a rejected line from ${source} in the log`,
      ).to.be.true;
    }
  }
});
