import type { IncomingMessage } from "node:http";
import type { MetricLineIngest } from "../sources/metric-ingest.js";
import { jsonError, jsonReply, type Reply } from "./json-error.js";

/** What `POST /metric-lines` needs. */
export interface MetricLinesDeps {
  ingest: MetricLineIngest;
  /** Largest body, in bytes. */
  maxLineBytes: number;
}

/** `POST /metric-lines`: one `[METRICS]` line per line of a text body; good lines apply even when others fail. */
export async function handleMetricLines(deps: MetricLinesDeps, req: IncomingMessage): Promise<Reply> {
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
  if (body === undefined) return tooLarge();
  let accepted = 0;
  const rejected: { line: number; reason: string }[] = [];
  body
    .toString("utf8")
    .split("\n")
    .forEach((text, i) => {
      if (text.trim() === "") return;
      const outcome = deps.ingest.apply(text, "http");
      if (outcome.ok) accepted++;
      else rejected.push({ line: i + 1, reason: outcome.reason });
    });
  return jsonReply(200, { accepted, rejected });
}

/** The whole body, or undefined once it passes `limit` (the rest is read and discarded, not kept). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
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
      resolve(undefined);
    });
    req.on("end", () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}
