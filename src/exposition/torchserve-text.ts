import type { Attributes } from "@opentelemetry/api";
import type { MetricType } from "../catalog/types.js";
import { formatJavaDouble } from "./java-double.js";
import type { NativeHistogram } from "./native-histogram.js";

/** What the renderer needs to know of one family, besides its data. */
export interface FamilySpec {
  name: string;
  type: MetricType;
  /** Unit word shown in HELP. */
  unit: string;
  /** Label order; attributes not listed here follow in their own order. */
  labels: readonly string[];
}

/** Content type of TorchServe's (Prometheus text 0.0.4) exposition. */
export const TORCHSERVE_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A histogram series' cumulative state, buckets not yet summed. */
export interface HistogramValue {
  boundaries: readonly number[];
  /** One count per bucket, the last one for +Inf. */
  counts: number[];
  sum: number;
  count: number;
  /** Its native (exponential) buckets, for a histogram in native_histograms; never in this text. */
  native?: NativeHistogram;
}

/** Which of a histogram's sample names to print. */
export interface HistogramParts {
  bucket: boolean;
  count: boolean;
  sum: boolean;
}

/** The HELP and TYPE lines that open a family. */
export function familyHeader(family: FamilySpec): string {
  return (
    `# HELP ${family.name} Torchserve prometheus ${family.type} metric with unit: ${escapeHelp(family.unit)}\n` +
    `# TYPE ${family.name} ${family.type}\n`
  );
}

/** A counter's or gauge's sample line; `labels` as {@link labelPairs} writes them. */
export function scalarSample(name: string, labels: string, value: number): string {
  return `${name}${labels === "" ? "" : `{${labels}}`} ${formatJavaDouble(value)}\n`;
}

/** A histogram series' `_bucket` (cumulative, `le` last), `_count` and `_sum` lines, as asked. */
export function histogramSamples(
  name: string,
  labels: string,
  value: HistogramValue,
  parts: HistogramParts,
): string {
  let out = "";
  if (parts.bucket) {
    const { boundaries, counts } = value;
    let cumulative = 0;
    for (let i = 0; i < counts.length; i++) {
      cumulative += counts[i] ?? 0;
      const bound = i < boundaries.length ? formatJavaDouble(boundaries[i] ?? Infinity) : "+Inf";
      out += `${name}_bucket{${labels}le="${bound}",} ${formatJavaDouble(cumulative)}\n`;
    }
  }
  const braces = labels === "" ? "" : `{${labels}}`;
  if (parts.count) out += `${name}_count${braces} ${formatJavaDouble(value.count)}\n`;
  if (parts.sum) out += `${name}_sum${braces} ${formatJavaDouble(value.sum)}\n`;
  return out;
}

/**
 * `a="1",b="2",`: every pair ends with a comma, as the Java client writes them. Labels in `order`
 * come first; any other attribute follows by name, its name made a valid label name. The text is
 * the same for the same attributes in any order, so it also serves as the series' identity.
 */
export function labelPairs(order: readonly string[], attributes: Attributes): string {
  let out = "";
  let seen = 0;
  for (const key of order) {
    const value = attributes[key];
    if (value !== undefined) {
      out += `${key}="${escapeLabelValue(String(value))}",`;
      seen++;
    }
  }
  // Attributes beyond the declared labels are rare (the SDK's overflow marker); look only then.
  if (Object.keys(attributes).length > seen) {
    for (const key of Object.keys(attributes).sort()) {
      if (!order.includes(key) && attributes[key] !== undefined) {
        // Dots are not valid in label names: otel.metric.overflow becomes otel_metric_overflow.
        out += `${key.replace(/[^a-zA-Z0-9_]/g, "_")}="${escapeLabelValue(String(attributes[key]))}",`;
      }
    }
  }
  return out;
}

/** HELP text escapes backslash and newline. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

const NEEDS_ESCAPE = /[\\"\n]/;

/** Label values escape backslash, double quote and newline. */
function escapeLabelValue(text: string): string {
  if (!NEEDS_ESCAPE.test(text)) return text;
  return text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
