import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { Logger } from "../log.js";
import { jsonError, jsonReply, writeReply, type Reply } from "../server/json-error.js";
import type { MetricLineIngest } from "../sources/metric-ingest.js";
import type { MetricRecorder } from "../telemetry/recorder.js";
import type { InferenceFrontend } from "./frontend.js";
import { parseInferencePath, requestPathname } from "./inference-path.js";
import { forward } from "./proxy.js";
import { QueueFullError } from "./worker-pool.js";
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
  const arrival = performance.now();
  const pathname = requestPathname(req.url ?? "/");
  if (pathname === undefined) {
    send(deps, req, res, jsonError(400, `Request target ${JSON.stringify(req.url)} is not a valid URL.`));
    return;
  }
  if (pathname === "/ping") {
    send(
      deps,
      req,
      res,
      req.method === "GET" ? jsonReply(200, { status: "Healthy" }) : notAllowed(req, "GET"),
    );
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
  const record = (status: number, queueMs: number, backendMs: number): void => {
    deps.recorder.recordInference({
      model: route.model,
      version: route.version,
      status,
      latencyMs: performance.now() - arrival,
      queueMs,
      backendMs,
    });
  };
  let lease;
  try {
    lease = await served.pool.acquire();
  } catch (err) {
    const message =
      err instanceof QueueFullError
        ? `Model "${route.model}" version ${served.version} has no free worker and its queue is full (job_queue_size=${err.limit}).`
        : `Model "${route.model}" cannot take requests: ${(err as Error).message}`;
    // recordInference counts the response itself, so the reply is written without send().
    record(503, performance.now() - arrival, 0);
    writeReply(req, res, jsonError(503, message));
    req.resume();
    return;
  }
  const queueMs = performance.now() - arrival;
  try {
    const result = await forward(req, res, lease.url, served.agent);
    record(result.status, queueMs, result.backendMs);
  } finally {
    lease.release();
  }
}

function notAllowed(req: IncomingMessage, allowed: string): Reply {
  return jsonError(405, `${req.method ?? "?"} is not allowed here; use ${allowed}.`, { Allow: allowed });
}
