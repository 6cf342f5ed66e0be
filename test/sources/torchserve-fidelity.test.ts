import { expect } from "chai";

import { loadDefaultCatalog } from "../../src/catalog/load.js";
import { DEFAULT_BUCKETS } from "../../src/catalog/types.js";
import { formatJavaDouble } from "../../src/exposition/java-double.js";
import { Scraper } from "../../src/exposition/scrape.js";
import { createMemoryLogger } from "../../src/log.js";
import { MetricLineIngest } from "../../src/sources/metric-ingest.js";
import { TorchServeLineIngest } from "../../src/sources/torchserve-ingest.js";
import type { TorchServeFile } from "../../src/sources/torchserve-line.js";
import { extraMetrics } from "../../src/telemetry/extra-metrics.js";
import { createTelemetry } from "../../src/telemetry/pipeline.js";

/*
 * The sidecar's /metrics against what TorchServe 0.12 itself serves in metrics_mode=prometheus
 * for the same traffic, family by family, byte for byte. Each scenario is a list of TorchServe's
 * own metric updates (what its frontend, MetricCache and workers do for each request); from each
 * update this file derives both what TorchServe's code paths write in metrics_mode=log
 * (LogMetric's record in ts_metrics.log or model_metrics.log, WorkerLifeCycle's
 * `result=[METRICS]…` echo in ts_log.log, the access line) and what they do in
 * metrics_mode=prometheus (PrometheusCounter inc, PrometheusGauge set, PrometheusHistogram
 * observe, with the metrics.yaml labels plus Hostname, or for an auto-detected metric the worker
 * line's dims plus Hostname and its type, COUNTER when it has none). The sidecar reads the first;
 * the reference below renders the second. Differences on purpose are in the README's
 * "Differences from TorchServe": series in first-seen order (the reference keeps that order too),
 * counters of a late start counting from the start.
 */

const HOST = "ts-host";
const T = "2024-05-30T21:46:03,625";
const EPOCH = 1717105563;

type Dims = readonly (readonly [string, string])[];

/** One update TorchServe makes to one of its metrics. */
type Update =
  | { by: "frontend"; name: string; unit: string; dims: Dims; value: number }
  | {
      by: "worker";
      name: string;
      unit: string;
      dims: Dims;
      value: number;
      /** The worker line's `|#type:`, if it has one. */
      type?: "COUNTER" | "GAUGE" | "HISTOGRAM";
      requestIds: readonly string[];
    }
  | { by: "access"; request: string; status: number; ms: number }
  /** Not an update: Prometheus scrapes the sidecar here. */
  | { by: "scrape" };

/** The catalog's (TorchServe's default metrics.yaml's) type, unit and labels by metric. */
const CATALOG = new Map(loadDefaultCatalog().metrics.map((m) => [m.name, m]));

/** TorchServe's frontend and workers for one inference request of a known model. */
function request(model: string, version: string, status: number, id: string, ms = 12): Update[] {
  const m: Dims = [
    ["model_name", model],
    ["model_version", version],
  ];
  const host: Dims = [["Level", "Host"]];
  const updates: Update[] = [
    { by: "frontend", name: "ts_inference_requests_total", unit: "Count", dims: m, value: 1 },
    { by: "frontend", name: "ts_queue_latency_microseconds", unit: "Microseconds", dims: m, value: 80.5 },
    { by: "frontend", name: "QueueTime", unit: "Milliseconds", dims: host, value: 0 },
  ];
  if (status < 500) {
    updates.push(
      { by: "frontend", name: "WorkerThreadTime", unit: "Milliseconds", dims: host, value: 1 },
      {
        by: "worker",
        name: "HandlerTime",
        unit: "ms",
        dims: [
          ["ModelName", model],
          ["Level", "Model"],
        ],
        value: ms - 1.25,
        type: "GAUGE",
        requestIds: [id],
      },
    );
  }
  updates.push(
    {
      by: "frontend",
      name: "ts_inference_latency_microseconds",
      unit: "Microseconds",
      dims: m,
      value: ms * 1000.1,
    },
    {
      by: "frontend",
      name: `Requests${status < 300 ? "2" : status < 500 ? "4" : "5"}XX`,
      unit: "Count",
      dims: host,
      value: 1,
    },
    {
      by: "access",
      request: `POST /predictions/${model}${version === "default" ? "" : `/${version}`} HTTP/1.1`,
      status,
      ms,
    },
  );
  return updates;
}

/** A response TorchServe gives without running a model (404, management, ping). */
function response(request: string, status: number): Update[] {
  return [
    {
      by: "frontend",
      name: `Requests${status < 300 ? "2" : status < 500 ? "4" : "5"}XX`,
      unit: "Count",
      dims: [["Level", "Host"]],
      value: 1,
    },
    { by: "access", request, status, ms: 1 },
  ];
}

/** A custom metric from a handler (`metrics.add_counter`, `add_metric`, `add_histogram`...). */
function custom(
  name: string,
  type: "COUNTER" | "GAUGE" | "HISTOGRAM" | undefined,
  value: number,
  model = "mnist",
): Update {
  return {
    by: "worker",
    name,
    unit: "Count",
    dims: [
      ["ModelName", model],
      ["Level", "Model"],
    ],
    value,
    type,
    requestIds: ["r-1"],
  };
}

const dimsText = (dims: Dims): string => dims.map(([k, v]) => `${k}:${v}`).join(",");

/** What TorchServe writes for an update in metrics_mode=log, by file (LogMetric, WorkerLifeCycle, the access log). */
function logLines(u: Update): { file: TorchServeFile; text: string }[] {
  switch (u.by) {
    case "frontend":
      return [
        {
          file: "ts_metrics",
          text: `${T} - ${u.name}.${u.unit}:${formatJavaDouble(u.value)}|#${dimsText(u.dims)}|#hostname:${HOST},timestamp:${EPOCH}`,
        },
      ];
    case "worker": {
      const type = u.type === undefined ? "" : `|#type:${u.type}`;
      const raw = `[METRICS]${u.name}.${u.unit}:${u.value}|#${dimsText(u.dims)}${type}|#hostname:${HOST},${EPOCH},${u.requestIds.join(",")}`;
      const declared = CATALOG.get(u.name);
      return [
        {
          file: "ts_log",
          text: `${T} [INFO ] W-9000-${String(u.dims[0]?.[1])}_1.0-stdout org.pytorch.serve.wlm.WorkerLifeCycle - result=${raw}, pattern=[METRICS]`,
        },
        {
          file: "model_metrics",
          // LogMetric: the YAML's unit for a declared metric, the line's for an auto-detected one.
          text: `${T} - ${u.name}.${declared?.unit ?? u.unit}:${formatJavaDouble(u.value)}|#${dimsText(u.dims)}|#hostname:${HOST},requestID:${u.requestIds.join(",")},timestamp:${EPOCH}`,
        },
      ];
    }
    case "access":
      return [{ file: "access_log", text: `${T} - /127.0.0.1:53514 "${u.request}" ${u.status} ${u.ms}` }];
    case "scrape":
      return [];
  }
}

interface RefFamily {
  type: "counter" | "gauge" | "histogram";
  unit: string;
  labels: readonly string[];
  series: Map<string, number | { counts: number[]; count: number; sum: number }>;
}

/** TorchServe's prometheus mode: MetricCache's metrics and the Prometheus Java client's text. */
class TorchServeReference {
  readonly families = new Map<string, RefFamily>();

  constructor() {
    // MetricCache registers every metric of metrics.yaml at start (Hostname last for model metrics).
    for (const m of CATALOG.values()) {
      this.families.set(m.name, { type: m.type, unit: m.unit, labels: m.dimensions, series: new Map() });
    }
  }

  /** One update as TorchServe applies it; `counting` false: a counter or histogram update is not shown (late start). */
  apply(u: Update, counting = true): void {
    if (u.by === "access" || u.by === "scrape") return;
    let family = this.families.get(u.name);
    if (family === undefined) {
      if (u.by !== "worker") return;
      // addAutoDetectMetricBackend: the line's type, COUNTER without one; labels: its dims, then Hostname.
      family = {
        type: (u.type ?? "COUNTER").toLowerCase() as RefFamily["type"],
        unit: u.unit,
        labels: [...u.dims.map(([k]) => k), "Hostname"],
        series: new Map(),
      };
      this.families.set(u.name, family);
    }
    // Dimension values in label order, the hostname last (its label is Hostname or hostname).
    const values = [...u.dims.map(([, v]) => v), HOST];
    const key = family.labels.map((l, i) => `${l}="${values[i] ?? ""}",`).join("");
    const old = family.series.get(key);
    if (family.type === "gauge") family.series.set(key, u.value);
    else if (!counting) return;
    else if (family.type === "counter") family.series.set(key, ((old as number | undefined) ?? 0) + u.value);
    else {
      const h = (old as { counts: number[]; count: number; sum: number } | undefined) ?? {
        counts: DEFAULT_BUCKETS.map(() => 0),
        count: 0,
        sum: 0,
      };
      DEFAULT_BUCKETS.forEach((bound, i) => {
        if (u.value <= bound) h.counts[i] = (h.counts[i] ?? 0) + 1;
      });
      h.count++;
      h.sum += u.value;
      family.series.set(key, h);
    }
  }

  /** The family's text as TorchServe's /metrics prints it. */
  render(name: string): string {
    const f = this.families.get(name);
    if (f === undefined) return "";
    let out = `# HELP ${name} Torchserve prometheus ${f.type} metric with unit: ${f.unit}\n# TYPE ${name} ${f.type}\n`;
    for (const [labels, v] of f.series) {
      if (typeof v === "number") {
        out += `${name}{${labels}} ${formatJavaDouble(v)}\n`;
        continue;
      }
      DEFAULT_BUCKETS.forEach((bound, i) => {
        out += `${name}_bucket{${labels}le="${formatJavaDouble(bound)}",} ${formatJavaDouble(v.counts[i] ?? 0)}\n`;
      });
      out += `${name}_bucket{${labels}le="+Inf",} ${formatJavaDouble(v.count)}\n`;
      out += `${name}_count{${labels}} ${formatJavaDouble(v.count)}\n`;
      out += `${name}_sum{${labels}} ${formatJavaDouble(v.sum)}\n`;
    }
    return out;
  }
}

/** The sidecar as the service wires it next to TorchServe, reading lines instead of files. */
function sidecar() {
  const logger = createMemoryLogger();
  const catalog = loadDefaultCatalog().metrics;
  const declared = new Set(catalog.map((m) => m.name));
  const telemetry = createTelemetry({
    metrics: [...catalog, ...extraMetrics(DEFAULT_BUCKETS).filter((m) => !declared.has(m.name))],
    format: "torchserve",
    hostname: "sidecar-host",
    logger,
    inferenceResponses: false,
  });
  const scraper = new Scraper(
    telemetry.reader,
    telemetry.families,
    { mode: "prometheus", format: "torchserve", exactTotal: telemetry.exactTotal },
    logger,
  );
  const ingest = new MetricLineIngest({
    recorder: telemetry.recorder,
    register: (def) => telemetry.register(def),
    autoDetect: false,
    logger,
  });
  const ts = new TorchServeLineIngest({ ingest, recorder: telemetry.recorder, logger, typesFollowed: true });
  return { ts, logger, scrape: () => scraper.scrape(undefined) };
}

/** Each family's block (HELP through its samples) of a TorchServe text, by name. */
function families(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const block of text.split(/(?=^# HELP )/m)) {
    const name = /^# HELP (\S+) /.exec(block)?.[1];
    if (name !== undefined) out.set(name, block);
  }
  return out;
}

interface Scenario {
  title: string;
  /** Updates before the sidecar starts (a late start), then after. */
  before?: Update[];
  updates: Update[];
}

const SCENARIOS: Scenario[] = [
  { title: "a success", updates: request("mnist", "default", 200, "r-1") },
  { title: "a failure (503)", updates: request("mnist", "default", 503, "r-1") },
  { title: "a 404 for a model it does not serve", updates: response("POST /predictions/nope HTTP/1.1", 404) },
  {
    title: "a management call",
    updates: [...response("GET /models HTTP/1.1", 200), ...response("GET /ping HTTP/1.1", 200)],
  },
  {
    title: "a batch of two",
    updates: [
      ...request("mnist", "default", 200, "r-1").filter((u) => u.by !== "worker"),
      ...request("mnist", "default", 200, "r-2").filter((u) => u.by !== "worker"),
      {
        by: "worker",
        name: "HandlerTime",
        unit: "ms",
        dims: [
          ["ModelName", "mnist"],
          ["Level", "Model"],
        ],
        value: 20.5,
        type: "GAUGE",
        requestIds: ["r-1", "r-2"],
      },
    ],
  },
  {
    title: "custom counter, gauge and histogram, and a metric without a type (TorchServe's COUNTER)",
    updates: [
      ...request("mnist", "default", 200, "r-1"),
      custom("CustomRequestCount", "COUNTER", 1),
      custom("CustomRequestCount", "COUNTER", 1),
      custom("CustomGauge", "GAUGE", 7.5),
      custom("CustomGauge", "GAUGE", 2.25),
      custom("ExamplePercentMetric", "HISTOGRAM", 50),
      custom("ExamplePercentMetric", "HISTOGRAM", 50),
      custom("UntypedMetric", undefined, 3),
      custom("UntypedMetric", undefined, 4),
    ],
  },
  {
    title: "model names with dots and dashes, and versions",
    updates: [
      ...request("my.model-v2", "default", 200, "r-1"),
      ...request("resnet-18", "2.0", 200, "r-2"),
      ...request("resnet-18", "2.0", 500, "r-3"),
    ],
  },
  {
    title: "totals that interval sums would round differently (TorchServe adds each in turn)",
    updates: [71884, "scrape", 0.002, 0.28, "scrape", 0.1, 0.2, 0.3].map((value): Update =>
      typeof value === "string"
        ? { by: "scrape" }
        : {
            by: "frontend",
            name: "ts_inference_latency_microseconds",
            unit: "Microseconds",
            dims: [
              ["model_name", "m"],
              ["model_version", "default"],
            ],
            value,
          },
    ),
  },
  {
    title: "a late start (gauges as TorchServe has them; counters from the start, on purpose)",
    before: [
      ...request("mnist", "default", 200, "r-0"),
      {
        by: "frontend",
        name: "WorkerLoadTime",
        unit: "Milliseconds",
        dims: [
          ["WorkerName", "W-9000-mnist_1.0"],
          ["Level", "Host"],
        ],
        value: 2704,
      },
      { by: "frontend", name: "CPUUtilization", unit: "Percent", dims: [["Level", "Host"]], value: 12.5 },
    ],
    updates: request("mnist", "default", 200, "r-1", 30),
  },
];

describe("fidelity to TorchServe 0.12's prometheus mode (derived from its code paths)", () => {
  for (const scenario of SCENARIOS) {
    it(`serves what TorchServe serves for ${scenario.title}, family by family, byte for byte`, async () => {
      const reference = new TorchServeReference();
      const { ts, scrape } = sidecar();
      const before = scenario.before ?? [];
      for (const u of before) reference.apply(u, false);
      if (before.length > 0) {
        const byFile = new Map<TorchServeFile, string[]>();
        for (const u of before)
          for (const l of logLines(u)) byFile.set(l.file, [...(byFile.get(l.file) ?? []), l.text]);
        await ts.prime(() => Promise.resolve([...byFile].map(([file, lines]) => ({ file, lines }))));
      }
      for (const u of scenario.updates) {
        if (u.by === "scrape") await scrape();
        reference.apply(u);
        for (const { file, text } of logLines(u)) ts.apply(text, "torchserve", file);
      }
      ts.stop();
      const ours = families(await scrape());
      for (const name of reference.families.keys()) {
        expect(ours.get(name) ?? `(no family ${name})\n`, name).to.equal(reference.render(name));
      }
    });
  }
});
