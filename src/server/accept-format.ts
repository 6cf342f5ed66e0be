import type { ExpositionFormat } from "../exposition/scrape.js";
import { qValue } from "./accept-encoding.js";

/** The delimited `io.prometheus.client.MetricFamily` protobuf media type, as Prometheus asks for it. */
export const PROTOBUF_CONTENT_TYPE =
  "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/**
 * The exposition a scrape asks for by its `Accept` header (RFC 9110 §12.5.1): protobuf only when
 * the header names the delimited MetricFamily protobuf with a q-value above 0 and above that of
 * text (`text/plain`, `text/*` or `*` + `/*`, the most specific range deciding). Anything else,
 * no header included, gets text, TorchServe's format; so does a tie.
 */
export function negotiateFormat(header: string | string[] | undefined): ExpositionFormat {
  if (header === undefined) return "text";
  let protobuf = 0;
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
    const specificity = type === "text/plain" ? 2 : type === "text/*" ? 1 : type === "*/*" ? 0 : -1;
    if (specificity < 0) continue;
    if (text === undefined || specificity > text.specificity) text = { q, specificity };
    else if (specificity === text.specificity) text.q = Math.max(text.q, q);
  }
  return protobuf > 0 && protobuf > (text?.q ?? 0) ? "protobuf" : "text";
}

/** Whether the media type's parameters say `proto=io.prometheus.client.MetricFamily; encoding=delimited`. */
function isDelimitedMetricFamily(params: readonly string[]): boolean {
  let proto = false;
  let delimited = false;
  for (const param of params) {
    const [name = "", value = ""] = param.split("=");
    const key = name.trim().toLowerCase();
    const text = value.trim().replace(/^"(.*)"$/, "$1");
    if (key === "proto") proto = text === "io.prometheus.client.MetricFamily";
    if (key === "encoding") delimited = text === "delimited";
  }
  return proto && delimited;
}
