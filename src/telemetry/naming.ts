import type { MetricDefinition } from "../catalog/types.js";
import { LIFECYCLE_INSTRUMENT_NAMES } from "./lifecycle-metrics.js";

/** OpenTelemetry-style name and UCUM unit of one catalog metric's instrument. */
export interface InstrumentName {
  name: string;
  unit: string;
}

/** The default catalog's metrics under OpenTelemetry naming (values stay in TorchServe's units). */
const KNOWN_NAMES: Readonly<Record<string, string>> = {
  Requests2XX: "serve.requests.2xx",
  Requests4XX: "serve.requests.4xx",
  Requests5XX: "serve.requests.5xx",
  ts_inference_requests_total: "serve.inference.requests",
  ts_inference_latency_microseconds: "serve.inference.latency",
  ts_queue_latency_microseconds: "serve.queue.latency",
  QueueTime: "serve.queue.time",
  WorkerThreadTime: "serve.worker.thread_time",
  WorkerLoadTime: "serve.worker.load_time",
  CPUUtilization: "serve.host.cpu.utilization",
  MemoryUsed: "serve.host.memory.used",
  MemoryAvailable: "serve.host.memory.available",
  MemoryUtilization: "serve.host.memory.utilization",
  DiskUsage: "serve.host.disk.used",
  DiskAvailable: "serve.host.disk.available",
  DiskUtilization: "serve.host.disk.utilization",
  GPUUtilization: "serve.gpu.utilization",
  GPUMemoryUsed: "serve.gpu.memory.used",
  GPUMemoryUtilization: "serve.gpu.memory.utilization",
  HandlerTime: "serve.model.handler_time",
  PredictionTime: "serve.model.prediction_time",
  serve_request_duration_seconds: "serve.request.duration",
  serve_queue_depth: "serve.queue.depth",
  serve_inference_responses_total: "serve.inference.responses",
  serve_inference_errors_total: "serve.inference.errors",
  serve_metric_lines_rejected_total: "serve.metric_lines.rejected",
  ...LIFECYCLE_INSTRUMENT_NAMES,
};

/** TorchServe unit words (long and short forms) and their UCUM codes; TorchServe's "Megabytes" are MiB. */
const UNITS: Readonly<Record<string, string>> = {
  count: "{count}",
  percent: "%",
  "%": "%",
  ns: "ns",
  nanoseconds: "ns",
  us: "us",
  microseconds: "us",
  ms: "ms",
  milliseconds: "ms",
  s: "s",
  seconds: "s",
  b: "By",
  bytes: "By",
  kb: "KiBy",
  kilobytes: "KiBy",
  mb: "MiBy",
  megabytes: "MiBy",
  gb: "GiBy",
  gigabytes: "GiBy",
};

/** UCUM code for a TorchServe unit word; an unknown word becomes a UCUM annotation such as `{images}`. */
export function otelUnit(unitWord: string): string {
  // Own properties only: a unit or metric named `constructor` must not find Object.prototype's.
  const word = unitWord.toLowerCase();
  return (Object.hasOwn(UNITS, word) ? UNITS[word] : undefined) ?? `{${unitWord.replace(/[{}]/g, "")}}`;
}

/** `HandlerTime` → `handler_time`: OpenTelemetry (and serve_*) names are lowercase. */
export function snakeCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9_.-]/g, "_")
    .toLowerCase();
}

/**
 * Names catalog metrics' instruments in OpenTelemetry style, remembering the names it gave: names
 * that would collide (`FooBar` and `foo_bar`) get a numeric suffix, since two instruments of one
 * name would merge.
 */
export class InstrumentNamer {
  private readonly taken = new Set<string>();

  /**
   * The OpenTelemetry name and unit for `def`, unique among all names given so far: `preferred`
   * when given (a metric the service derives names its own), else the known or derived name.
   */
  name(def: MetricDefinition, preferred?: string): InstrumentName {
    const base =
      preferred ??
      (Object.hasOwn(KNOWN_NAMES, def.name) ? KNOWN_NAMES[def.name] : undefined) ??
      `serve.${def.section === "model_metrics" ? "model." : ""}${snakeCase(def.name)}`.slice(0, 250);
    let name = base;
    for (let n = 2; this.taken.has(name); n++) name = `${base}_${n}`;
    this.taken.add(name);
    return { name, unit: otelUnit(def.unit) };
  }

  /** Reserves a name used as it is (a TorchServe name registered at run time). */
  reserve(name: string): void {
    this.taken.add(name);
  }
}
