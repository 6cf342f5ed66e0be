import type { IncomingMessage, RequestListener, Server, ServerResponse } from "node:http";
import type { Logger } from "../log.js";
import { jsonError, jsonReply, writeReply, type Reply } from "../server/json-error.js";
import type { MetricLineIngest } from "../sources/metric-ingest.js";
import type { MetricRecorder } from "../telemetry/recorder.js";
import type { InferenceFrontend } from "./frontend.js";
import { InferenceExchange } from "./exchange.js";
import { parseInferencePath, requestTarget } from "./inference-path.js";
import { parseTraceparent } from "./traceparent.js";
import { handleMetricLines } from "../server/metric-lines-handler.js";

/** What the inference address serves. */
export interface InferenceServerDeps {
  frontend: InferenceFrontend;
  ingest: MetricLineIngest;
  recorder: MetricRecorder;
  logger: Logger;
  /** Largest `POST /metric-lines` body, in bytes. */
  maxLineBytes: number;
}

/**
 * The inference address: `GET /ping`, TorchServe's and KServe's inference paths forwarded to the
 * model's workers, and `POST /metric-lines`. Every response is counted in Requests2XX/4XX/5XX.
 */
export function createInferenceHandler(deps: InferenceServerDeps): RequestListener {
  return (req, res) => {
    handle(deps, req, res).catch((err: unknown) => {
      deps.logger.error(`inference: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      if (!res.headersSent) send(deps, req, res, jsonError(500, "Internal error; see the service log."));
      else res.destroy();
    });
  };
}

function send(deps: InferenceServerDeps, req: IncomingMessage, res: ServerResponse, reply: Reply): void {
  deps.recorder.recordResponse(reply.status);
  writeReply(req, res, reply);
}

async function handle(deps: InferenceServerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const coding = req.headers["transfer-encoding"];
  if (coding !== undefined && coding.trim().toLowerCase() !== "chunked") {
    // Node decodes only the chunked framing: any other coding would reach a worker, or the line
    // parser, as bytes with no header saying what they are.
    const message = `Transfer-Encoding: ${coding} is not supported; send the body as it is, or chunked alone.`;
    send(deps, req, res, jsonError(501, message, { Connection: "close" }));
    return;
  }
  const target = requestTarget(req.url ?? "/");
  if (target === undefined) {
    send(deps, req, res, jsonError(400, `Request target ${JSON.stringify(req.url)} is not a valid URL.`));
    return;
  }
  const { pathname } = target;
  if (pathname === "/ping") {
    send(deps, req, res, req.method === "GET" ? ping(deps.frontend) : notAllowed(req, "GET"));
    return;
  }
  if (pathname === "/metric-lines") {
    if (req.method !== "POST") send(deps, req, res, notAllowed(req, "POST"));
    else {
      const reply = await handleMetricLines(deps, req);
      if (reply !== undefined) send(deps, req, res, reply); // undefined: the client is gone
    }
    return;
  }
  const route = parseInferencePath("POST", pathname);
  if (route === undefined) {
    send(
      deps,
      req,
      res,
      jsonError(404, `Requested resource is not found, please refer to API document. (${pathname})`),
    );
    return;
  }
  if (req.method !== "POST") {
    send(deps, req, res, notAllowed(req, "POST"));
    return;
  }
  const served = deps.frontend.lookup(route.model, route.version);
  if (served === "unknown-model") {
    send(deps, req, res, jsonError(404, `Model not found: ${route.model}`, {}, "ModelNotFoundException"));
    return;
  }
  if (served === "unknown-version") {
    const message = `Model version: ${route.version ?? ""} does not exist for model: ${route.model}`;
    send(deps, req, res, jsonError(404, message, {}, "ModelVersionNotFoundException"));
    return;
  }
  // The worker gets the path that was routed, so what is counted for a model is what it served.
  // Read now: the exchange forwards the header as it is, and the record gets the ids as exemplar.
  const trace = parseTraceparent(req.headers.traceparent);
  const exchange = new InferenceExchange(req, res, served, pathname + target.search, (outcome) =>
    // recordInference counts the response itself (when one was sent).
    deps.recorder.recordInference({ model: route.model, version: route.version, ...outcome, trace }),
  );
  exchange.start();
}

/**
 * Lets a client that half-closes its connection after a whole request (`shutdown(SHUT_WR)`, as
 * `curl`-like tools and some proxies do) still get its answer: by default Node aborts the request
 * when the client's side ends.
 */
export function acceptHalfClosedClients(server: Server): void {
  // Node's own switch, read on each connection's end; not in its type definitions.
  Object.assign(server, { httpAllowHalfOpen: true });
}

/** TorchServe's `/ping`: Healthy (200) while every model version has a ready worker, else Unhealthy (500). */
function ping(frontend: InferenceFrontend): Reply {
  const health = frontend.health();
  return health.healthy
    ? jsonReply(200, { status: "Healthy" })
    : jsonReply(500, { status: "Unhealthy", notReady: health.notReady });
}

function notAllowed(req: IncomingMessage, allowed: string): Reply {
  return jsonError(405, `${req.method ?? "?"} is not allowed here; use ${allowed}.`, { Allow: allowed });
}
