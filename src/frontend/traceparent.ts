import type { TraceContext } from "../telemetry/recorder.js";

/** `00-<trace id>-<parent id>-<flags>`: the length of version 00, and the least of any version. */
const VERSION_00_LENGTH = 55;
const ZERO_TRACE_ID = "0".repeat(32);
const ZERO_SPAN_ID = "0".repeat(16);

/**
 * The trace and parent (span) ids of a W3C Trace Context `traceparent` header, or undefined for
 * none or a bad one, which is ignored, never an error. Version 00 is exactly
 * `00-<32 hex>-<16 hex>-<2 hex>`, lowercase, neither id all zeros. A later version (not `ff`) is
 * read by its first four fields as the specification says, if what follows them starts with `-`.
 */
export function parseTraceparent(header: string | readonly string[] | undefined): TraceContext | undefined {
  // Node joins repeated traceparent headers with ", ", which no version's layout allows.
  if (typeof header !== "string" || header.length < VERSION_00_LENGTH) return undefined;
  const version = header.slice(0, 2);
  if (!isLowerHex(header, 0, 2) || version === "ff") return undefined;
  if (
    version === "00"
      ? header.length !== VERSION_00_LENGTH
      : header.length > VERSION_00_LENGTH && header[55] !== "-"
  ) {
    return undefined;
  }
  if (header[2] !== "-" || header[35] !== "-" || header[52] !== "-") return undefined;
  if (!isLowerHex(header, 3, 35) || !isLowerHex(header, 36, 52) || !isLowerHex(header, 53, 55))
    return undefined;
  const traceId = header.slice(3, 35);
  const spanId = header.slice(36, 52);
  if (traceId === ZERO_TRACE_ID || spanId === ZERO_SPAN_ID) return undefined;
  return { traceId, spanId };
}

/** Whether `text[from..to)` is all lowercase hex digits (the specification forbids uppercase). */
function isLowerHex(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}
