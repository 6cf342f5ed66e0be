import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import { parseInferencePath } from "./frontend/inference-path.js";
import { parseTraceparent } from "./frontend/traceparent.js";
import type { MetricsService } from "./service.js";

/** What the middleware needs of a {@link MetricsService}; a stand-in with these two calls works too. */
export type RequestMetricsRecorder = Pick<MetricsService, "recordInference" | "recordResponse">;

/** Options of {@link requestMetrics} and {@link withRequestMetrics}. */
export interface RequestMetricsOptions {
  /**
   * Model (and version) of a request, or undefined when it is not an inference request (only
   * Requests2XX/4XX/5XX is counted then). Called once, when the request arrives, before the app
   * has seen it. Default: {@link parseInferencePath} on the method and `req.url`.
   */
  model?(req: IncomingMessage): { model: string; version?: string } | undefined;
}

/** A middleware in the shape express, connect and fastify's `reply.raw` hooks call. */
export type RequestMetricsMiddleware = (
  req: IncomingMessage,
  res: ServerResponse,
  next?: (err?: unknown) => void,
) => void;

/**
 * The status counted for a response whose connection closed before it finished (the app
 * destroyed the socket, crashed mid-body, or the client gave up): no complete answer reached the
 * client, so it counts as a server-side failure (Requests5XX), as a proxy in front would report it.
 */
const UNFINISHED_STATUS = 500;

/**
 * Returns a `(req, res, next?)` middleware that records each request once its response finishes:
 * an inference request (see {@link RequestMetricsOptions.model}) through `recordInference` (the
 * response class, the three `ts_*` counters with model_version `default` when none is named,
 * QueueTime, WorkerThreadTime), any other request through `recordResponse` alone.
 *
 * - Latency runs from the middleware's call to the response's `finish`. QueueTime is 0 and the whole
 *   latency counts as backend time, so WorkerThreadTime is ~0: the middleware cannot see inside the app.
 * - A 404 on an inference path is counted only in Requests4XX: TorchServe counts `ts_*` for known
 *   models only, and a series per unknown name would let any client grow /metrics without bound.
 * - A response whose connection closes before it finishes counts as a 5XX.
 * - A valid W3C `traceparent` on the request gives its latency and response an exemplar.
 *
 * Use it as `app.use(mw)` in express or connect, as
 * `fastify.addHook("onRequest", (req, reply, done) => mw(req.raw, reply.raw, done))`, or through
 * {@link withRequestMetrics} around a plain node:http handler. Install it first, so that latency
 * includes the other middleware.
 */
export function requestMetrics(
  service: RequestMetricsRecorder,
  options: RequestMetricsOptions = {},
): RequestMetricsMiddleware {
  return (req, res, next) => {
    const arrival = performance.now();
    const target =
      options.model === undefined ? parseInferencePath(req.method ?? "", req.url ?? "/") : options.model(req);
    let recorded = false;
    const record = (status: number): void => {
      // 'close' follows 'finish' on every response; only the first of the two counts.
      if (recorded) return;
      recorded = true;
      if (target === undefined || status === 404) {
        service.recordResponse(status);
        return;
      }
      const latencyMs = performance.now() - arrival;
      service.recordInference({
        model: target.model,
        version: target.version,
        status,
        latencyMs,
        queueMs: 0,
        backendMs: latencyMs,
        trace: parseTraceparent(req.headers.traceparent),
      });
    };
    res.once("finish", () => record(res.statusCode));
    res.once("close", () => record(UNFINISHED_STATUS));
    next?.();
  };
}

/**
 * Wraps a plain node:http request handler so that every request it serves is recorded as
 * {@link requestMetrics} records it: `createServer(withRequestMetrics(metrics, handler))`.
 */
export function withRequestMetrics(
  service: RequestMetricsRecorder,
  handler: RequestListener,
  options: RequestMetricsOptions = {},
): RequestListener {
  const measure = requestMetrics(service, options);
  return (req, res) => {
    measure(req, res);
    handler(req, res);
  };
}
