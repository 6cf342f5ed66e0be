import { PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import type { ResourceMetrics } from "@opentelemetry/sdk-metrics";

/** Content type of exporter-prometheus' output. */
export const OTEL_TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const serializer = new PrometheusSerializer(undefined, false, undefined, true, true);

/**
 * Renders with exporter-prometheus' own serializer (OpenTelemetry naming: `_total` on counters,
 * `# UNIT` lines), then applies the same sample-name filter as the TorchServe renderer.
 */
export function renderOtelText(resourceMetrics: ResourceMetrics, filter?: ReadonlySet<string>): string {
  const text = serializer.serialize(resourceMetrics);
  return filter === undefined ? text : filterExposition(text, filter);
}

/** Keeps the samples whose name is in `filter`, and the comment lines of families that keep any. */
function filterExposition(text: string, filter: ReadonlySet<string>): string {
  let out = "";
  let comments = "";
  let kept = false;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      if (line.startsWith("# HELP ")) {
        comments = "";
        kept = false;
      }
      comments += `${line}\n`;
      continue;
    }
    const end = line.search(/[{ ]/);
    if (!filter.has(end === -1 ? line : line.slice(0, end))) continue;
    if (!kept) out += comments;
    kept = true;
    out += `${line}\n`;
  }
  return out;
}
