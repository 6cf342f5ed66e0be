import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Logger } from "../log.js";
import { parseNameFilter } from "../exposition/name-filter.js";
import { jsonError, writeReply, type Reply } from "./json-error.js";

/** What the metrics endpoint needs from the service. */
export interface MetricsEndpoint {
  /** Renders the exposition for a `name[]` filter (undefined: everything). */
  render(filter: ReadonlySet<string> | undefined): Promise<string>;
  contentType: string;
  /** Called once for every response sent, with its status (Requests2XX/4XX/5XX). */
  onResponse(status: number): void;
  logger: Logger;
}

/**
 * The metrics API's request handler: GET and HEAD on `/metrics`, 405 for other methods there,
 * 404 elsewhere; errors as JSON `{code, type, message}`.
 */
export function createMetricsHandler(endpoint: MetricsEndpoint): RequestListener {
  return (req: IncomingMessage, res: ServerResponse): void => {
    void reply(endpoint, req).then((r) => {
      // Counted before the bytes leave, so the client's next scrape already includes this response.
      endpoint.onResponse(r.status);
      writeReply(req, res, r);
    });
  };
}

async function reply(endpoint: MetricsEndpoint, req: IncomingMessage): Promise<Reply> {
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
  try {
    const body = await endpoint.render(parseNameFilter(url.search));
    return { status: 200, headers: { "Content-Type": endpoint.contentType }, body };
  } catch (err) {
    endpoint.logger.error(`/metrics: collection failed: ${(err as Error).stack ?? String(err)}`);
    return jsonError(500, "Metrics collection failed; see the service log.");
  }
}
