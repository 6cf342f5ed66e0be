import type { IncomingMessage } from "node:http";
import { performance } from "node:perf_hooks";
import type { MetricLineIngest } from "../sources/metric-ingest.js";
import { jsonError, jsonReply, type Reply } from "./json-error.js";

/** What `POST /metric-lines` needs. */
export interface MetricLinesDeps {
  ingest: Pick<MetricLineIngest, "apply">;
  /** Largest body, in bytes. */
  maxLineBytes: number;
}

/** One rejected line of a `POST /metric-lines` body, numbered from 1. */
export interface RejectedLine {
  line: number;
  reason: string;
}

/** The JSON body of a `POST /metric-lines` reply. */
export interface MetricLinesReport {
  /** Lines applied. */
  accepted: number;
  /** The first {@link REPORTED_REJECTIONS} rejected lines, in body order. */
  rejected: RejectedLine[];
  /** Every rejected line, listed or not. */
  rejected_count: number;
}

/** How many rejected lines a reply lists; the rest are only counted, so the reply stays small. */
export const REPORTED_REJECTIONS = 100;

// Reasons quote parts of the line; a listed reason is cut here so that 100 of them stay small.
const MAX_REASON_CHARS = 300;
// Lines are applied in slices of at most this much time, then other requests, scrapes and timers
// get the event loop: an 8 MiB body of one-character lines is seconds of work in all.
const SLICE_MS = 2;
const NEWLINE = 0x0a;

/**
 * `POST /metric-lines`: one `[METRICS]` line per line of a text body; good lines apply even when
 * others fail. The body is applied only once it has arrived whole, in slices that yield the
 * event loop. Resolves undefined when the client went away: before the body was complete (nothing
 * is applied) or before the reply was ready. Nothing should be sent or counted then.
 */
export async function handleMetricLines(
  deps: MetricLinesDeps,
  req: IncomingMessage,
): Promise<Reply | undefined> {
  const tooLarge = (): Reply =>
    jsonError(
      413,
      `The body is larger than metric_lines_max_bytes (${deps.maxLineBytes} bytes); send fewer lines per request.`,
      {
        // The rest of the body is not read, so this connection cannot carry another request.
        Connection: "close",
      },
    );
  if (Number(req.headers["content-length"] ?? 0) > deps.maxLineBytes) return tooLarge();
  const body = await readBody(req, deps.maxLineBytes);
  if (body === "gone") return undefined;
  if (body === "too-large") return tooLarge();
  const report = await applyLines(deps.ingest, body);
  // The lines of a whole body apply even when the client leaves meanwhile; the reply has no reader.
  return req.socket.destroyed ? undefined : jsonReply(200, report);
}

/** Applies each non-blank line of `body`, yielding to the event loop every {@link SLICE_MS}. */
async function applyLines(ingest: MetricLinesDeps["ingest"], body: Buffer): Promise<MetricLinesReport> {
  const report: MetricLinesReport = { accepted: 0, rejected: [], rejected_count: 0 };
  let sliceStart = performance.now();
  let lineNumber = 0;
  for (let start = 0; start < body.length;) {
    const newline = body.indexOf(NEWLINE, start);
    const end = newline < 0 ? body.length : newline;
    lineNumber++;
    // A newline byte never falls inside a multi-byte UTF-8 sequence, so each line decodes alone.
    const text = body.toString("utf8", start, end);
    start = end + 1;
    if (text.trim() !== "") {
      const outcome = ingest.apply(text, "http");
      if (outcome.ok) report.accepted++;
      else {
        report.rejected_count++;
        if (report.rejected.length < REPORTED_REJECTIONS) {
          report.rejected.push({ line: lineNumber, reason: cut(outcome.reason) });
        }
      }
    }
    if (performance.now() - sliceStart >= SLICE_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
  }
  return report;
}

function cut(reason: string): string {
  return reason.length <= MAX_REASON_CHARS ? reason : `${reason.slice(0, MAX_REASON_CHARS)}…`;
}

/**
 * The whole body; "too-large" once it passes `limit` (the rest is read and discarded, not kept);
 * "gone" when the client closed the connection or reset it before the body was complete.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | "too-large" | "gone"> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (over || size <= limit) {
        if (!over) chunks.push(chunk);
        return;
      }
      over = true;
      chunks.length = 0;
      resolve("too-large");
    });
    req.on("end", () => resolve(over ? "too-large" : Buffer.concat(chunks)));
    // An aborted upload emits 'error' (ECONNRESET "aborted") and then 'close' without 'end'. Once
    // resolved, the later events change nothing.
    req.on("error", () => resolve("gone"));
    req.on("close", () => {
      if (!req.complete) resolve("gone");
    });
  });
}
