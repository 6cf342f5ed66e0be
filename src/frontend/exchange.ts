import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import { PassThrough } from "node:stream";
import type { Dispatcher } from "undici";
import { jsonError, writeReply } from "../server/json-error.js";
import type { ErrorReason } from "../telemetry/extra-metrics.js";
import { endToEndHeaders } from "./forwarded-headers.js";
import {
  PoolClosedError,
  QueueFullError,
  type Lease,
  type PoolWaiter,
  type WorkerFault,
  type WorkerPool,
} from "./worker-pool.js";

/** The model version an exchange is for. */
export interface ExchangeTarget {
  model: string;
  version: string;
  pool: WorkerPool;
  /** Keeps connections to this version's workers (an undici Agent: a Pool per worker address). */
  dispatcher: Dispatcher;
  /** How long a request may wait for a worker, and a worker may go without answering. */
  responseTimeoutMs: number;
}

/** How one exchange ended, reported once. */
export interface ExchangeOutcome {
  /** The status the client got; undefined when it left before any response was sent. */
  status: number | undefined;
  /** Arrival to the end. */
  latencyMs: number;
  /** Arrival to dispatch (or to the end, when never dispatched). */
  queueMs: number;
  /** Dispatch until the worker's answer ended or failed; 0 when never dispatched. */
  backendMs: number;
  /** Why it failed, when it did (a 5XX, or no answer at all); undefined for 2XX-4XX answers. */
  reason: ErrorReason | undefined;
}

/** Bodies (either way) of at most this many bytes, with a Content-Length, are read whole and sent at once. */
const WHOLE_BODY_BYTES = 64 * 1024;

interface Upstream {
  /** `http(s)://host:port`, which picks the connection pool. */
  origin: string;
  /** The Host header the worker gets. */
  host: string;
  /** The base URL's path without its trailing slash, put before each request's path. */
  prefix: string;
}

/** Worker base URLs parsed once: a handful per model, parsed on every request otherwise. */
const upstreams = new Map<string, Upstream>();

function parsedUpstream(baseUrl: string): Upstream {
  let upstream = upstreams.get(baseUrl);
  if (upstream === undefined) {
    const url = new URL(baseUrl);
    upstream = { origin: url.origin, host: url.host, prefix: url.pathname.replace(/\/$/, "") };
    // Restarted workers come back on new ports; a bound keeps that from growing without end.
    if (upstreams.size >= 1024) upstreams.clear();
    upstreams.set(baseUrl, upstream);
  }
  return upstream;
}

type State = "new" | "queued" | "forwarding" | "done";

/**
 * One inference request from arrival to its last byte: it waits for a worker slot, is forwarded
 * (method, normalised path, end-to-end headers, body) and the worker's answer is streamed back.
 * This is the one place that sees every way it can end (the worker answers, fails or hangs, the
 * client leaves, the time runs out, the service stops), and each of them goes through `finish`,
 * which releases the queue place or the slot, stops the worker request and reports once.
 *
 * Times: a request waits at most `responseTimeoutMs` for a slot (then 503), and once dispatched
 * the worker may go that long without sending anything (then 504, or a cut connection when its
 * answer has begun; the worker is reported stuck).
 *
 * The worker request goes through undici's dispatcher, with the exchange itself as its handler
 * (the `on…` methods): no stream objects per request on the worker's side.
 */
export class InferenceExchange implements PoolWaiter, Dispatcher.DispatchHandler {
  private state: State = "new";
  private readonly arrival = performance.now();
  private dispatchedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private lease: Lease | undefined;
  /** The worker request, once undici has started it. */
  private controller: Dispatcher.DispatchController | undefined;
  /** True only while `dispatch` runs: an error then is about the request itself, not the worker. */
  private dispatching = false;
  /** The worker's answer: its status, and end-to-end headers while its body is read whole. */
  private status = 0;
  private headers: OutgoingHttpHeaders | undefined;
  /** Chunks of an answer read whole; undefined while the answer is streamed (or not begun). */
  private chunks: Buffer[] | undefined;
  /** The worker's whole answer has arrived: its request must not be cut any more. */
  private answerEnded = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly target: ExchangeTarget,
    /** Normalised path and query, as routed. */
    private readonly path: string,
    private readonly onEnd: (outcome: ExchangeOutcome) => void,
  ) {}

  /** Takes a slot or a place in the queue; answers 503 at once when neither is to be had. */
  start(): void {
    this.res.once("close", () => this.clientClosed());
    let lease: Lease | undefined;
    try {
      lease = this.target.pool.acquire(this);
    } catch (err) {
      if (err instanceof QueueFullError) {
        this.reply(
          503,
          `Model "${this.target.model}" version ${this.target.version} has no free worker and its queue is full (job_queue_size=${err.limit}).`,
          "queue_full",
        );
        return;
      }
      if (err instanceof PoolClosedError) {
        this.reply(
          503,
          `Model "${this.target.model}" cannot take requests: the service is stopping.`,
          "stopping",
        );
        return;
      }
      throw err;
    }
    this.timer = setTimeout(() => this.timedOut(), this.target.responseTimeoutMs);
    if (lease === undefined) this.state = "queued";
    else this.grant(lease);
  }

  /** The pool lends a slot: forward the request to its worker. */
  grant(lease: Lease): void {
    if (this.state === "done") {
      lease.release();
      return;
    }
    this.state = "forwarding";
    this.lease = lease;
    this.dispatchedAt = performance.now();
    // The worker gets the whole response timeout, however long the request waited.
    this.timer?.refresh();
    this.forward(lease.url);
  }

  /** The pool closed while the request waited. */
  refuse(reason: Error): void {
    this.reply(503, `Model "${this.target.model}" cannot take requests: ${reason.message}.`, "stopping");
  }

  /** undici starts the worker request: keep its controller, or cut it when the exchange is over. */
  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.state !== "forwarding") controller.abort(new Error("the exchange is over"));
  }

  /** The worker's status and headers (informational ones included). */
  onResponseStart(
    controller: Dispatcher.DispatchController,
    status: number,
    headers: Readonly<Record<string, string | string[] | undefined>>,
  ): void {
    if (this.state !== "forwarding") return;
    this.timer?.refresh();
    // undici refuses 100 and 101 itself (the socket is closed); other 1xx come before the answer.
    if (status >= 100 && status < 200) return;
    if (status < 200 || status > 599) {
      this.workerFailed(`answered with the invalid status ${String(status).padStart(3, "0")}`);
      return;
    }
    this.status = status;
    const forwarded = endToEndHeaders(headers);
    if (status === 204 || status === 304) {
      // A body after a bodiless answer is a common worker bug, and its bytes may arrive after the
      // connection was lent to the next request, which would fail on them: the answer is complete
      // at its headers, so it is sent now and the connection is closed, not reused.
      this.answerEnded = true;
      this.send(status, forwarded, Buffer.alloc(0));
      controller.abort(new Error("a bodiless answer's connection is not reused"));
      return;
    }
    const length = Number(headers["content-length"]);
    if (Number.isInteger(length) && length <= WHOLE_BODY_BYTES) {
      // A small answer of known size goes out in one write, headers included.
      this.headers = forwarded;
      this.chunks = [];
      return;
    }
    this.send(status, forwarded, undefined);
  }

  /** A piece of the worker's body: kept, or streamed on with the client's backpressure. */
  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.state !== "forwarding") return;
    this.timer?.refresh();
    if (this.chunks !== undefined) {
      this.chunks.push(chunk);
      return;
    }
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once("drain", () => controller.resume());
    }
  }

  /** The worker's answer is complete. */
  onResponseEnd(): void {
    this.answerEnded = true;
    if (this.state !== "forwarding") return;
    const { chunks } = this;
    if (chunks !== undefined) {
      this.send(this.status, this.headers ?? {}, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      return;
    }
    this.res.end();
    this.finish(this.status);
  }

  /** The worker request failed: it could not be sent, the worker broke off, or it was aborted here. */
  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    if (this.dispatching) {
      // Only for what undici refuses to send; the client's request is at fault, not the worker.
      this.reply(400, `The request cannot be forwarded: ${err.message}`, undefined);
      return;
    }
    if (this.state !== "forwarding" || this.answerEnded) return;
    // The client's body broke off: the client left, which is no fault of the worker's.
    if (this.req.destroyed && !this.req.complete) {
      this.clientClosed();
      return;
    }
    const { code } = err as NodeJS.ErrnoException;
    if (err.message === "bad upgrade") {
      this.workerFailed("answered 101 Switching Protocols, which is not forwarded");
      return;
    }
    // undici's socket errors say how the connection ended in fixed words; other codes say enough.
    const detail =
      code === "UND_ERR_SOCKET" ? `the connection closed (${err.message})` : (code ?? "unknown error");
    this.workerFailed(detail, true);
  }

  private forward(baseUrl: string): void {
    const { req } = this;
    const upstream = parsedUpstream(baseUrl);
    const headers = endToEndHeaders(req.headers);
    headers.host = upstream.host;
    // This server already answered `100 Continue` to the client; the worker gets the body at once.
    delete headers.expect;
    const length =
      req.headers["content-length"] === undefined && req.headers["transfer-encoding"] === undefined
        ? 0
        : Number(req.headers["content-length"]);
    if (Number.isInteger(length) && length <= WHOLE_BODY_BYTES) {
      // A small body of known size goes to the worker in one write with the headers.
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        if (this.state !== "forwarding") return;
        const body = chunks.length === 0 ? null : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        this.dispatch(upstream, headers, body ?? null);
      });
    } else {
      // undici destroys a body it could not send; the client's request stays whole for the 502.
      const body = new PassThrough();
      req.pipe(body);
      this.dispatch(upstream, headers, body);
    }
  }

  private dispatch(
    upstream: Upstream,
    headers: Record<string, string | string[]>,
    body: Buffer | PassThrough | null,
  ): void {
    this.dispatching = true;
    try {
      this.target.dispatcher.dispatch(
        {
          origin: upstream.origin,
          path: `${upstream.prefix}${this.path}`,
          method: this.req.method ?? "POST",
          headers,
          body,
        },
        this,
      );
    } finally {
      this.dispatching = false;
    }
  }

  /** The client's connection closed: once the status has gone out, the response was sent, however much of its body arrived. */
  private clientClosed(): void {
    if (!this.res.writableFinished) this.finish(this.res.headersSent ? this.res.statusCode : undefined);
  }

  /**
   * Writes the worker's status and headers, and the whole body when given. False (and the exchange
   * is over) when Node refuses them, which only a worker breaking the protocol can cause.
   */
  private send(status: number, headers: OutgoingHttpHeaders, body: Buffer | undefined): boolean {
    try {
      this.res.writeHead(status, headers);
    } catch (err) {
      this.workerFailed(`answered with headers that cannot be forwarded (${(err as Error).message})`);
      return false;
    }
    if (body === undefined) return true;
    this.res.end(body);
    this.finish(status);
    return true;
  }

  /** The worker cannot give this request a whole answer: 502 if nothing was sent yet, else a cut. */
  private workerFailed(detail: string, suspect = false): void {
    if (this.state !== "forwarding") return;
    this.reply(
      502,
      `The worker of model "${this.target.model}" version ${this.target.version} failed: ${detail}.`,
      suspect ? "worker_unreachable" : "worker_protocol",
      suspect ? { kind: "unreachable", detail } : undefined,
    );
  }

  private timedOut(): void {
    const { model, version, pool, responseTimeoutMs } = this.target;
    const seconds = responseTimeoutMs / 1000;
    if (this.state === "queued") {
      const none = pool.readyCount() === 0;
      const why = none ? "no worker is ready (they are starting or restarting)" : "every worker stayed busy";
      this.reply(
        503,
        `Model "${model}" version ${version}: ${why}; the request waited ${seconds} s.`,
        none ? "no_worker" : "queue_timeout",
      );
    } else if (this.state === "forwarding") {
      const detail = `no answer within ${seconds} s`;
      this.reply(504, `The worker of model "${model}" version ${version} sent ${detail}.`, "worker_timeout", {
        kind: "stuck",
        detail,
      });
    }
  }

  /** Ends the exchange with an error status: a JSON error if nothing was sent yet, else a cut connection. */
  private reply(
    status: number,
    message: string,
    reason: ErrorReason | undefined,
    fault?: { kind: WorkerFault; detail: string },
  ): void {
    if (this.state === "done") return;
    if (this.res.headersSent) this.res.destroy();
    else writeReply(this.req, this.res, jsonError(status, message));
    this.finish(status, fault, reason);
  }

  /**
   * The one end of every exchange: releases what it holds and reports, once. Without a `reason`, a
   * 5XX is the worker's own answer and no status means the client left first.
   */
  private finish(
    status: number | undefined,
    fault?: { kind: WorkerFault; detail: string },
    reason?: ErrorReason,
  ): void {
    const was = this.state;
    if (was === "done") return;
    this.state = "done";
    clearTimeout(this.timer);
    const now = performance.now();
    if (was === "queued") this.target.pool.cancel(this);
    // Whatever ended it first, the worker stops working for a request nobody waits for (undici
    // closes its connection); one not started yet is cut as it starts (onRequestStart).
    if (!this.answerEnded) this.controller?.abort(new Error("the exchange is over"));
    this.lease?.release(fault);
    const dispatched = this.lease !== undefined;
    this.onEnd({
      status,
      latencyMs: now - this.arrival,
      queueMs: (dispatched ? this.dispatchedAt : now) - this.arrival,
      backendMs: dispatched ? now - this.dispatchedAt : 0,
      reason: reason ?? (status === undefined ? "client_closed" : status >= 500 ? "worker_error" : undefined),
    });
  }
}
