import type { Exemplar } from "./exemplars.js";
import { formatJavaDouble } from "./java-double.js";
import type { FamilySpec, HistogramValue } from "./torchserve-text.js";

/** Content type of the OpenMetrics 1.0.0 text exposition. */
export const OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/** The line that ends every OpenMetrics exposition, an empty one included. */
export const OPENMETRICS_EOF = "# EOF\n";

/** The exemplars of one series: a histogram's by classic bucket (the last +Inf), a counter's at 0. */
export type ExemplarSlots = ReadonlyArray<Exemplar | undefined>;

/** How a family is declared in OpenMetrics: its MetricFamily name and type. */
export interface OpenMetricsFamily {
  name: string;
  type: "counter" | "gauge" | "histogram" | "unknown";
}

const TOTAL = "_total";

/**
 * The OpenMetrics declaration that keeps a family's sample names TorchServe's, which is what
 * Prometheus stores: an OpenMetrics counter's sample is `<family>_total`, so a counter whose name
 * ends in `_total` is a `counter` family named without it (its sample keeps the name), and any
 * other counter (`Requests2XX`) is `unknown`, whose sample is the family name (Prometheus 2.42
 * stores `Requests2XX_total` for a `counter` family `Requests2XX`). `histogram` says what the
 * data is; a family the catalog calls a histogram but whose data is not one is a gauge, as in
 * protobuf.
 */
export function openMetricsFamily(
  spec: FamilySpec,
  histogram: boolean,
  hasSeries: boolean,
): OpenMetricsFamily {
  const { name } = spec;
  if (histogram) return { name, type: "histogram" };
  switch (spec.type) {
    case "counter":
      return name.endsWith(TOTAL) && name.length > TOTAL.length
        ? { name: name.slice(0, -TOTAL.length), type: "counter" }
        : { name, type: "unknown" };
    case "gauge":
      return { name, type: "gauge" };
    default:
      return { name, type: hasSeries ? "gauge" : "histogram" };
  }
}

/** The HELP (TorchServe's text, escaped as OpenMetrics escapes it) and TYPE lines of a family. */
export function openMetricsHeader(spec: FamilySpec, family: OpenMetricsFamily): string {
  return (
    `# HELP ${family.name} Torchserve prometheus ${spec.type} metric with unit: ${escapeOpenMetrics(spec.unit)}\n` +
    `# TYPE ${family.name} ${family.type}\n`
  );
}

/**
 * A counter's, gauge's or unknown's sample line; `labels` as `labelPairs` writes them (each pair
 * followed by a comma, which OpenMetrics does not allow after the last). The exemplar is written
 * for a `counter` only, the one type besides histograms OpenMetrics lets carry one (Prometheus
 * fails the whole scrape over an exemplar on a sample not named `_total` or `_bucket`).
 */
export function openMetricsScalarSample(
  name: string,
  labels: string,
  value: number,
  family: OpenMetricsFamily,
  exemplar: Exemplar | undefined,
): string {
  const suffix = family.type === "counter" && exemplar !== undefined ? exemplarSuffix(exemplar) : "";
  return `${name}${braces(labels)} ${formatJavaDouble(value)}${suffix}\n`;
}

/**
 * A histogram series' cumulative `_bucket` lines (`le` written as in TorchServe's text, as
 * Prometheus 2.42 stores it unchanged), `_count` and `_sum`; an exemplar on the bucket of the same
 * index. No `_created`: Prometheus 2.42 would store it as one more series.
 */
export function openMetricsHistogramSamples(
  name: string,
  labels: string,
  value: HistogramValue,
  exemplars: ExemplarSlots | undefined,
): string {
  let out = "";
  const { boundaries, counts } = value;
  let cumulative = 0;
  for (let i = 0; i < counts.length; i++) {
    cumulative += counts[i] ?? 0;
    const bound = i < boundaries.length ? formatJavaDouble(boundaries[i] ?? Infinity) : "+Inf";
    const exemplar = exemplars?.[i];
    out += `${name}_bucket{${labels}le="${bound}"} ${formatJavaDouble(cumulative)}`;
    out += exemplar === undefined ? "\n" : `${exemplarSuffix(exemplar)}\n`;
  }
  const braced = braces(labels);
  out += `${name}_count${braced} ${formatJavaDouble(value.count)}\n`;
  out += `${name}_sum${braced} ${formatJavaDouble(value.sum)}\n`;
  return out;
}

/** `{a="1",b="2"}` from `a="1",b="2",`; nothing for no labels. */
function braces(labels: string): string {
  return labels === "" ? "" : `{${labels.slice(0, -1)}}`;
}

/**
 * ` # {trace_id="…",span_id="…"} 0.093 1700000000.123`: the labels in their order, the value, and
 * the time in seconds to the millisecond (left out when not a finite number).
 */
function exemplarSuffix(exemplar: Exemplar): string {
  let labels = "";
  for (const [key, text] of Object.entries(exemplar.labels)) {
    labels += `${labels === "" ? "" : ","}${key}="${escapeOpenMetrics(text)}"`;
  }
  return ` # {${labels}} ${formatJavaDouble(exemplar.value)}${seconds(exemplar.timestampMs)}`;
}

/** ` 1700000000.123` from 1700000000123, in whole digits (no float rounding); none when not a time. */
function seconds(timestampMs: number): string {
  const ms = Math.round(timestampMs);
  if (!Number.isFinite(ms) || ms < 0) return "";
  return ` ${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, "0")}`;
}

const NEEDS_ESCAPE = /[\\"\n]/;

/** HELP text and label values both escape backslash, double quote and newline in OpenMetrics. */
function escapeOpenMetrics(text: string): string {
  if (!NEEDS_ESCAPE.test(text)) return text;
  return text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
