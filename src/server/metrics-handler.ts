import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Logger } from "../log.js";
import { GzipBody } from "../exposition/gzip-body.js";
import { parseNameFilter } from "../exposition/name-filter.js";
import type { ExpositionFormat } from "../exposition/scrape.js";
import { acceptsGzip } from "./accept-encoding.js";
import { OPENMETRICS_CONTENT_TYPE } from "../exposition/openmetrics-text.js";
import { negotiateFormat, PROTOBUF_CONTENT_TYPE } from "./accept-format.js";
import { jsonError, writeReply, type Reply } from "./json-error.js";
import { ScrapeSends } from "./scrape-sends.js";
import { writeChunks } from "./write-chunks.js";

/**
 * Seconds a scrape's answer may take by default: Prometheus gives up on a scrape after its
 * `scrape_timeout` (10 s by default), so sending longer serves nobody, and holds the body.
 */
export const DEFAULT_SCRAPE_SEND_TIMEOUT_SECONDS = 15;

/** What the metrics endpoint needs from the service. */
export interface MetricsEndpoint {
  /**
   * Renders the exposition for a `name[]` filter (undefined: everything) as chunks, written in
   * turn: the whole text may be longer than one string can be. `format` is "protobuf" only
   * where {@link protobuf} is true, "openmetrics" only where {@link openMetrics} is.
   */
  render(filter: ReadonlySet<string> | undefined, format: ExpositionFormat): Promise<readonly Uint8Array[]>;
  /** The text exposition's content type. */
  contentType: string;
  /** Whether a scraper that asks for protobuf (by `Accept`) may get it; default false. */
  protobuf?: boolean | undefined;
  /** Whether a scraper that asks for OpenMetrics text (by `Accept`) may get it; default false. */
  openMetrics?: boolean | undefined;
  /** Called once for every response sent, with its status (Requests2XX/4XX/5XX). */
  onResponse(status: number): void;
  logger: Logger;
  /**
   * Milliseconds a scrape's answer may take from its headers to its last byte; then its connection
   * is closed. Default {@link DEFAULT_SCRAPE_SEND_TIMEOUT_SECONDS}.
   */
  sendTimeoutMs?: number | undefined;
  /** The ledger of scrapes being sent (given by tests that look at it); default: a new one. */
  sends?: ScrapeSends | undefined;
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
 * a client that goes away mid-body only ends the writing. A client that stops reading is cut
 * after the send timeout, and the bodies unfinished scrapes hold are bounded by
 * {@link ScrapeSends}, so stalled scrapers cannot pin memory.
 */
export function createMetricsHandler(endpoint: MetricsEndpoint): RequestListener {
  const gzip = new GzipBody();
  const { logger } = endpoint;
  let lastWarned = -Infinity;
  let unreported = 0;
  const sends =
    endpoint.sends ??
    new ScrapeSends({
      onClosed: (count) => {
        unreported += count;
        // Once a minute at most: a flood of stalled scrapers must not flood the log as well.
        if (Date.now() - lastWarned < 60_000) return;
        lastWarned = Date.now();
        logger.warn(
          `/metrics: closed ${unreported} unfinished scrape(s) whose clients had stopped reading ` +
            `while newer scrapes held their own bodies (memory bound: see SECURITY.md)`,
        );
        unreported = 0;
      },
    });
  const context: Context = {
    endpoint,
    gzip,
    sends,
    sendTimeoutMs: endpoint.sendTimeoutMs ?? DEFAULT_SCRAPE_SEND_TIMEOUT_SECONDS * 1000,
  };
  return (req: IncomingMessage, res: ServerResponse): void => {
    void respond(context, req, res).catch((err: unknown) => {
      endpoint.logger.error(
        `/metrics: answer failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
      res.destroy();
    });
  };
}

/** What every scrape of one handler shares. */
interface Context {
  endpoint: MetricsEndpoint;
  gzip: GzipBody;
  sends: ScrapeSends;
  sendTimeoutMs: number;
}

async function respond(context: Context, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { endpoint, sends } = context;
  const r = await reply(endpoint, context.gzip, req);
  // Counted before the bytes leave, so the client's next scrape already includes this response.
  endpoint.onResponse(r.status);
  if (!("chunks" in r)) {
    writeReply(req, res, r);
    return;
  }
  const headOnly = req.method === "HEAD";
  const send = { chunks: headOnly ? [] : r.chunks, close: () => res.destroy() };
  sends.begin(send);
  try {
    await writeChunks(res, r.status, r.headers, r.chunks, { headOnly, timeoutMs: context.sendTimeoutMs });
  } finally {
    sends.end(send);
  }
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
  const offered = { protobuf: endpoint.protobuf === true, openMetrics: endpoint.openMetrics === true };
  const negotiable = offered.protobuf || offered.openMetrics;
  const format = negotiable ? negotiateFormat(req.headers.accept, offered) : "text";
  let chunks: readonly Uint8Array[];
  try {
    chunks = await endpoint.render(parseNameFilter(url.search), format);
  } catch (err) {
    endpoint.logger.error(`/metrics: collection failed: ${(err as Error).stack ?? String(err)}`);
    return jsonError(500, "Metrics collection failed; see the service log.");
  }
  // HEAD is compressed too, so that its Content-Length is the one GET would send.
  const headers = {
    "Content-Type": contentType(format, endpoint.contentType),
    // Where another format can be negotiated, the answer depends on Accept too.
    Vary: negotiable ? "Accept-Encoding, Accept" : "Accept-Encoding",
  };
  if (!acceptsGzip(req.headers["accept-encoding"])) return { status: 200, headers, chunks };
  return { status: 200, headers: { ...headers, "Content-Encoding": "gzip" }, chunks: gzip.compress(chunks) };
}

/** The content type of an exposition; `text` that of the text format this endpoint serves. */
function contentType(format: ExpositionFormat, text: string): string {
  switch (format) {
    case "protobuf":
      return PROTOBUF_CONTENT_TYPE;
    case "openmetrics":
      return OPENMETRICS_CONTENT_TYPE;
    default:
      return text;
  }
}
