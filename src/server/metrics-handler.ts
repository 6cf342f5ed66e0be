import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Logger } from "../log.js";
import { GzipBody } from "../exposition/gzip-body.js";
import { parseNameFilter } from "../exposition/name-filter.js";
import { acceptsGzip } from "./accept-encoding.js";
import { jsonError, writeReply, type Reply } from "./json-error.js";
import { writeChunks } from "./write-chunks.js";

/** What the metrics endpoint needs from the service. */
export interface MetricsEndpoint {
  /**
   * Renders the exposition for a `name[]` filter (undefined: everything) as chunks, written in
   * turn: the whole text may be longer than one string can be.
   */
  render(filter: ReadonlySet<string> | undefined): Promise<readonly Uint8Array[]>;
  contentType: string;
  /** Called once for every response sent, with its status (Requests2XX/4XX/5XX). */
  onResponse(status: number): void;
  logger: Logger;
}

/** A scrape's answer: the exposition's chunks. */
interface Exposition {
  status: 200;
  headers: Record<string, string>;
  chunks: readonly Uint8Array[];
}

/**
 * The metrics API's request handler: GET and HEAD on `/metrics`, 405 for other methods there,
 * 404 elsewhere; errors as JSON `{code, type, message}`. The exposition is gzip-compressed for
 * clients that accept it (Prometheus does), and written chunk by chunk as the client takes it;
 * a client that goes away mid-body only ends the writing.
 */
export function createMetricsHandler(endpoint: MetricsEndpoint): RequestListener {
  const gzip = new GzipBody();
  return (req: IncomingMessage, res: ServerResponse): void => {
    void respond(endpoint, gzip, req, res).catch((err: unknown) => {
      endpoint.logger.error(
        `/metrics: answer failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
      res.destroy();
    });
  };
}

async function respond(
  endpoint: MetricsEndpoint,
  gzip: GzipBody,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const r = await reply(endpoint, gzip, req);
  // Counted before the bytes leave, so the client's next scrape already includes this response.
  endpoint.onResponse(r.status);
  if ("chunks" in r) await writeChunks(res, r.status, r.headers, r.chunks, req.method === "HEAD");
  else writeReply(req, res, r);
}

async function reply(
  endpoint: MetricsEndpoint,
  gzip: GzipBody,
  req: IncomingMessage,
): Promise<Reply | Exposition> {
  let url: URL;
  try {
    url = new URL(req.url ?? "/", "http://metrics.invalid");
  } catch {
    return jsonError(400, `Request target ${JSON.stringify(req.url)} is not a valid URL.`);
  }
  if (url.pathname !== "/metrics") {
    return jsonError(404, `Requested resource is not found, please refer to API document. (${url.pathname})`);
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    return jsonError(405, `${req.method ?? "?"} is not allowed on /metrics; use GET or HEAD.`, {
      Allow: "GET, HEAD",
    });
  }
  let chunks: readonly Uint8Array[];
  try {
    chunks = await endpoint.render(parseNameFilter(url.search));
  } catch (err) {
    endpoint.logger.error(`/metrics: collection failed: ${(err as Error).stack ?? String(err)}`);
    return jsonError(500, "Metrics collection failed; see the service log.");
  }
  // HEAD is compressed too, so that its Content-Length is the one GET would send.
  const headers = { "Content-Type": endpoint.contentType, Vary: "Accept-Encoding" };
  if (!acceptsGzip(req.headers["accept-encoding"])) return { status: 200, headers, chunks };
  return { status: 200, headers: { ...headers, "Content-Encoding": "gzip" }, chunks: gzip.compress(chunks) };
}
