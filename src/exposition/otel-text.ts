import { PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import type { DataPoint, MetricData, ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { chunksToString, TextChunks } from "./text-chunks.js";

/** Content type of exporter-prometheus' output. */
export const OTEL_TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const serializer = new PrometheusSerializer(undefined, false, undefined, true, true);

/** What the serializer prints when there is no metric at all. */
const NO_METRICS = "# no registered metrics";

/**
 * Data points serialized per call: each call's text stays far below V8's string limit even with
 * label values of 64K characters, and a metric with fewer points is one call, as before.
 */
const POINTS_PER_CALL = 256;

/**
 * Renders with exporter-prometheus' own serializer (OpenTelemetry naming: `_total` on counters,
 * `# UNIT` lines), then applies the same sample-name filter as the TorchServe renderer. The text
 * is the serializer's, byte for byte, but made metric by metric (a large one a few hundred data
 * points at a time) and kept as UTF-8 chunks, so that it is never one string.
 */
export function renderOtelChunks(resourceMetrics: ResourceMetrics, filter?: ReadonlySet<string>): Buffer[] {
  const out = new TextChunks();
  const filtered = filter === undefined ? undefined : new ExpositionFilter(filter);
  let any = false;
  for (const scopeMetrics of resourceMetrics.scopeMetrics) {
    for (const metric of scopeMetrics.metrics) {
      for (const text of serializeMetric(resourceMetrics, scopeMetrics.scope, metric)) {
        any = true;
        out.add(filtered === undefined ? text : filtered.lines(text));
      }
    }
  }
  if (!any) out.add(filtered === undefined ? NO_METRICS : filtered.lines(NO_METRICS));
  return out.finish();
}

/** {@link renderOtelChunks} as one string. */
export function renderOtelText(resourceMetrics: ResourceMetrics, filter?: ReadonlySet<string>): string {
  return chunksToString(renderOtelChunks(resourceMetrics, filter));
}

/**
 * One metric's text in pieces of whole lines: the first with its HELP/UNIT/TYPE lines, the others
 * the same call's output for further data points with those lines cut off.
 */
function* serializeMetric(
  resourceMetrics: ResourceMetrics,
  scope: ResourceMetrics["scopeMetrics"][number]["scope"],
  metric: MetricData,
): Generator<string> {
  const points: readonly DataPoint<unknown>[] = metric.dataPoints;
  for (let start = 0; start === 0 || start < points.length; start += POINTS_PER_CALL) {
    const part =
      points.length <= POINTS_PER_CALL
        ? metric
        : ({ ...metric, dataPoints: points.slice(start, start + POINTS_PER_CALL) } as MetricData);
    // The serializer prints `HELP[\nUNIT]\nTYPE\nsamples` trimmed, plus a newline per metric.
    const text = serializer.serialize({
      resource: resourceMetrics.resource,
      scopeMetrics: [{ scope, metrics: [part] }],
    });
    if (text === NO_METRICS) return; // a name the serializer refuses: it printed nothing
    yield start === 0 ? text : withoutHeader(text);
  }
}

/** The text after the `# TYPE` line. */
function withoutHeader(text: string): string {
  const type = text.indexOf("\n# TYPE ");
  const end = type === -1 ? -1 : text.indexOf("\n", type + 1);
  return end === -1 ? "" : text.slice(end + 1);
}

/**
 * Keeps the samples whose name is in the filter, and the comment lines of families that keep any,
 * across pieces that each end on a line.
 */
class ExpositionFilter {
  private comments = "";
  private kept = false;

  constructor(private readonly names: ReadonlySet<string>) {}

  lines(text: string): string {
    let out = "";
    for (const line of text.split("\n")) {
      if (line === "") continue;
      if (line.startsWith("#")) {
        if (line.startsWith("# HELP ")) {
          this.comments = "";
          this.kept = false;
        }
        this.comments += `${line}\n`;
        continue;
      }
      const end = line.search(/[{ ]/);
      if (!this.names.has(end === -1 ? line : line.slice(0, end))) continue;
      if (!this.kept) out += this.comments;
      this.kept = true;
      out += `${line}\n`;
    }
    return out;
  }
}
