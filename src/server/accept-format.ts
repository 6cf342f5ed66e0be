import type { ExpositionFormat } from "../exposition/scrape.js";
import { qValue } from "./accept-encoding.js";

/** The delimited `io.prometheus.client.MetricFamily` protobuf media type, as Prometheus asks for it. */
export const PROTOBUF_CONTENT_TYPE =
  "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/** The expositions besides text 0.0.4 that a scrape may be offered. */
export interface OfferedFormats {
  /** Delimited protobuf (TorchServe naming). */
  protobuf: boolean;
  /** OpenMetrics 1.0.0 text (the `openmetrics` setting, TorchServe naming). */
  openMetrics: boolean;
}

/**
 * OpenMetrics versions answered with OpenMetrics 1.0.0 text: 1.0.0, and 0.0.1, which Prometheus
 * 2.x also names (its parser reads both alike); no version means the current one.
 */
const OPENMETRICS_VERSIONS = new Set([undefined, "1.0.0", "0.0.1"]);

/**
 * The exposition a scrape asks for by its `Accept` header (RFC 9110 §12.5.1), among text 0.0.4 and
 * the `offered` others: the one with the highest q-value above 0. Protobuf is the delimited
 * MetricFamily protobuf; OpenMetrics `application/openmetrics-text` of version 1.0.0 or 0.0.1; text
 * `text/plain`, `text/*` or `*` + `/*`, the most specific range deciding its q-value. Text wins a
 * tie, and protobuf one with OpenMetrics; anything else, no header included, gets text,
 * TorchServe's format.
 */
export function negotiateFormat(
  header: string | string[] | undefined,
  offered: OfferedFormats,
): ExpositionFormat {
  if (header === undefined) return "text";
  let protobuf = 0;
  let openMetrics = 0;
  let text: { q: number; specificity: number } | undefined;
  for (const item of (Array.isArray(header) ? header.join(",") : header).split(",")) {
    const [range = "", ...params] = item.split(";");
    const q = qValue(params);
    // A malformed q-value makes the whole item unusable: ignore it rather than guess.
    if (q === undefined) continue;
    const type = range.trim().toLowerCase();
    if (type === "application/vnd.google.protobuf") {
      if (isDelimitedMetricFamily(params)) protobuf = Math.max(protobuf, q);
      continue;
    }
    if (type === "application/openmetrics-text") {
      if (OPENMETRICS_VERSIONS.has(parameter(params, "version"))) openMetrics = Math.max(openMetrics, q);
      continue;
    }
    const specificity = type === "text/plain" ? 2 : type === "text/*" ? 1 : type === "*/*" ? 0 : -1;
    if (specificity < 0) continue;
    if (text === undefined || specificity > text.specificity) text = { q, specificity };
    else if (specificity === text.specificity) text.q = Math.max(text.q, q);
  }
  let chosen: ExpositionFormat = "text";
  let best = text?.q ?? 0;
  if (offered.protobuf && protobuf > best) {
    chosen = "protobuf";
    best = protobuf;
  }
  if (offered.openMetrics && openMetrics > best) chosen = "openmetrics";
  return chosen;
}

/** Whether the media type's parameters say `proto=io.prometheus.client.MetricFamily; encoding=delimited`. */
function isDelimitedMetricFamily(params: readonly string[]): boolean {
  return (
    parameter(params, "proto") === "io.prometheus.client.MetricFamily" &&
    parameter(params, "encoding") === "delimited"
  );
}

/** A media type parameter's value (the last one given, unquoted), or undefined when absent. */
function parameter(params: readonly string[], name: string): string | undefined {
  let found: string | undefined;
  for (const param of params) {
    const [key = "", value = ""] = param.split("=");
    if (key.trim().toLowerCase() === name) found = value.trim().replace(/^"(.*)"$/, "$1");
  }
  return found;
}
