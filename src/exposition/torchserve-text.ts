import type { Attributes } from "@opentelemetry/api";
import { DataPointType, type MetricData } from "@opentelemetry/sdk-metrics";
import type { MetricType } from "../catalog/types.js";
import { formatJavaDouble } from "./java-double.js";

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

/**
 * Renders collected metrics as TorchServe's Prometheus text, families in `families` order.
 * With a `filter` (sample names), only matching samples are printed and families left empty
 * vanish; without one, a family with no series still prints its HELP and TYPE.
 */
export function renderTorchServeText(
  families: readonly FamilySpec[],
  data: ReadonlyMap<string, MetricData>,
  filter?: ReadonlySet<string>,
): string {
  let out = "";
  for (const family of families) {
    const samples = renderSamples(family, data.get(family.name), filter);
    if (filter !== undefined && samples === "") continue;
    out += `# HELP ${family.name} Torchserve prometheus ${family.type} metric with unit: ${escapeHelp(family.unit)}\n`;
    out += `# TYPE ${family.name} ${family.type}\n`;
    out += samples;
  }
  return out;
}

function renderSamples(
  family: FamilySpec,
  metric: MetricData | undefined,
  filter?: ReadonlySet<string>,
): string {
  if (metric === undefined) return "";
  const name = family.name;
  const want = (sample: string): boolean => filter === undefined || filter.has(sample);
  let out = "";
  if (metric.dataPointType === DataPointType.HISTOGRAM) {
    const wantBucket = want(`${name}_bucket`);
    const wantCount = want(`${name}_count`);
    const wantSum = want(`${name}_sum`);
    if (!wantBucket && !wantCount && !wantSum) return "";
    for (const point of metric.dataPoints) {
      const labels = labelPairs(family.labels, point.attributes);
      const { boundaries, counts } = point.value.buckets;
      if (wantBucket) {
        let cumulative = 0;
        for (let i = 0; i < counts.length; i++) {
          cumulative += counts[i] ?? 0;
          const bound = i < boundaries.length ? formatJavaDouble(boundaries[i] ?? Infinity) : "+Inf";
          out += `${name}_bucket{${labels}le="${bound}",} ${formatJavaDouble(cumulative)}\n`;
        }
      }
      const braces = labels === "" ? "" : `{${labels}}`;
      if (wantCount) out += `${name}_count${braces} ${formatJavaDouble(point.value.count)}\n`;
      if (wantSum) out += `${name}_sum${braces} ${formatJavaDouble(point.value.sum ?? 0)}\n`;
    }
    return out;
  }
  if (metric.dataPointType === DataPointType.EXPONENTIAL_HISTOGRAM || !want(name)) return "";
  for (const point of metric.dataPoints) {
    const labels = labelPairs(family.labels, point.attributes);
    out += `${name}${labels === "" ? "" : `{${labels}}`} ${formatJavaDouble(point.value)}\n`;
  }
  return out;
}

/**
 * Label text by attributes object. The SDK keeps one attributes object per series until the series
 * is updated again, so unchanged series reuse their text across scrapes; a WeakMap lets retired
 * objects go. Keyed by object alone: one object belongs to one series of one family.
 */
const labelText = new WeakMap<Attributes, string>();

/** `a="1",b="2",`: every pair ends with a comma, as the Java client writes them. */
function labelPairs(order: readonly string[], attributes: Attributes): string {
  const cached = labelText.get(attributes);
  if (cached !== undefined) return cached;
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
    for (const key of Object.keys(attributes)) {
      if (!order.includes(key) && attributes[key] !== undefined) {
        // Dots are not valid in label names: otel.metric.overflow becomes otel_metric_overflow.
        out += `${key.replace(/[^a-zA-Z0-9_]/g, "_")}="${escapeLabelValue(String(attributes[key]))}",`;
      }
    }
  }
  labelText.set(attributes, out);
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
