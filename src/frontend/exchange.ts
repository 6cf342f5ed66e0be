import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import { PassThrough } from "node:stream";
import type { Dispatcher } from "undici";
import { jsonError, writeReply } from "../server/json-error.js";
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
  /**
   * How long a request may wait for a worker, and a worker may go without answering while it has
   * all it needs (the request so far, and a client that reads).
   */
  responseTimeoutMs: number;
  /** How long a client may go without sending a byte of its unfinished body (then 408). */
  clientBodyTimeoutMs: number;
  /** How long a client may leave the answer unread while more of it waits (then its connection is cut). */
  clientReadTimeoutMs: number;
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
}

/** Bodies (either way) of at most this many bytes, with a Content-Length, are read whole and sent at once. */
const WHOLE_BODY_BYTES = 64 * 1024;

/**
 * How long a reset connection waits to see its worker's process exit. A worker that exits closes
 * its connections as it goes, so the exit follows a reset by far less than this.
 */
const EXIT_SEEN_MS = 1000;

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
 * Whom the exchange waits for now, and so whose clock runs: a worker slot (queued), the worker
 * (it has the request so far and its client reads), or the client (sending its body, or reading).
 */
type Waiting = "slot" | "worker" | "client-body" | "client-read";

/**
 * One inference request from arrival to its last byte: it waits for a worker slot, is forwarded
 * (method, normalised path, end-to-end headers, body) and the worker's answer is streamed back.
 * This is the one place that sees every way it can end (the worker answers, fails or hangs, the
 * client leaves, the time runs out, the service stops), and each of them goes through `finish`,
 * which releases the queue place or the slot, stops the worker request and reports once.
 *
 * Times: only one party is timed at once, the one the exchange waits for (see `waitingFor`). A
 * request waits at most `responseTimeoutMs` for a slot (then 503). Once dispatched, the worker may
 * go that long without sending anything while it has what it needs, the whole request (or all the
 * client sent so far of a streamed one) and a client that reads (then 504, or a cut connection
 * when its answer has begun; the worker is reported stuck). Waiting on the client never counts
 * against the worker: a client may go `clientBodyTimeoutMs` without sending a byte of its body
 * (then 408, or a cut once the answer began) and `clientReadTimeoutMs` without reading (then its
 * connection is cut); the worker request is aborted and its slot freed, its health untouched.
 *
 * The worker request goes through undici's dispatcher, with the exchange itself as its handler
 * (the `on…` methods): no stream objects per request on the worker's side.
 */
export class InferenceExchange implements PoolWaiter, Dispatcher.DispatchHandler {
  private state: State = "new";
  private readonly arrival = performance.now();
  private dispatchedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Whose clock `timer` runs; undefined when none runs. */
  private waitingFor: Waiting | undefined;
  /** The client's whole body has arrived (or it has none). */
  private bodyEnded = false;
  /** The worker holds back a streamed body: what the client sent waits for the worker to take it. */
  private bodyHeld = false;
  /** The client does not take the answer as fast as it comes: the worker's stream is paused. */
  private clientBlocked = false;
  /** Undoes what forward() attached to the client's request. */
  private detachBody: (() => void) | undefined;
  /** The whole body as sent to the worker (null: none), kept to send it again; undefined while streamed or unread. */
  private wholeBody: Buffer | null | undefined;
  /** Some of the worker's answer arrived (its status line at least). */
  private answerBegan = false;
  /** The request was sent again once after a worker failed before seeing it. */
  private sentAgain = false;
  private lease: Lease | undefined;
  /** The worker request, once undici has started it. */
  private controller: Dispatcher.DispatchController | undefined;
  /** True only while `dispatch` runs: an error then is about the request itself, not the worker. */
  private dispatching = false;
  /** The worker's answer: its status, and its end-to-end headers until they are sent. */
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
    // The inference server lets a client half-close after its request and still get the answer
    // (acceptHalfClosedClients). TCP cannot tell that from a client that left; while the request
    // only waits in the queue, its place is given back at once rather than kept for it.
    const { socket } = this.req;
    const onClientEnd = (): void => {
      if (this.state !== "queued" && this.state !== "new") return;
      this.res.destroy();
      this.finish(undefined);
    };
    socket.once("end", onClientEnd);
    this.res.once("close", () => socket.off("end", onClientEnd));
    this.enqueue(false);
  }

  /** A slot now, or a place in the queue (at its head when `again`), or a 503 when neither is to be had. */
  private enqueue(again: boolean): void {
    let lease: Lease | undefined;
    try {
      lease = this.target.pool.acquire(this, again);
    } catch (err) {
      if (err instanceof QueueFullError) {
        this.reply(
          503,
          `Model "${this.target.model}" version ${this.target.version} has no free worker and its queue is full (job_queue_size=${err.limit}).`,
        );
        return;
      }
      if (err instanceof PoolClosedError) {
        this.reply(503, `Model "${this.target.model}" cannot take requests: the service is stopping.`);
        return;
      }
      throw err;
    }
    if (lease === undefined) {
      this.state = "queued";
      this.rearm();
    } else this.grant(lease);
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
    this.forward(lease.url);
    // The worker gets the whole response timeout, however long the request waited.
    this.rearm();
  }

  /** The pool closed while the request waited. */
  refuse(reason: Error): void {
    this.reply(503, `Model "${this.target.model}" cannot take requests: ${reason.message}.`);
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
    this.answerBegan = true;
    this.progress("worker");
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
    // A streamed answer's status and headers go out with its first bytes: a worker whose framing
    // breaks before any (a bad chunk size) still gets its client a 502, not an empty close.
    this.headers = forwarded;
  }

  /** A piece of the worker's body: kept, or streamed on with the client's backpressure. */
  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.state !== "forwarding") return;
    this.progress("worker");
    if (this.chunks !== undefined) {
      this.chunks.push(chunk);
      return;
    }
    const { headers } = this;
    if (headers !== undefined) {
      this.headers = undefined;
      if (!this.send(this.status, headers, undefined)) return;
    }
    if (!this.res.write(chunk) && !this.clientBlocked) {
      // Now the client is the one waited for: the worker cannot send while its answer is unread.
      this.clientBlocked = true;
      controller.pause();
      this.rearm();
      this.res.once("drain", () => {
        this.clientBlocked = false;
        if (this.state !== "forwarding") return;
        controller.resume();
        this.rearm();
      });
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
    if (this.headers !== undefined) {
      this.send(this.status, this.headers, Buffer.alloc(0));
      return;
    }
    this.res.end();
    this.finish(this.status);
  }

  /** The worker request failed: it could not be sent, the worker broke off, or it was aborted here. */
  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    if (this.dispatching) {
      // Only for what undici refuses to send; the client's request is at fault, not the worker.
      this.reply(400, `The request cannot be forwarded: ${err.message}`);
      return;
    }
    if (this.state !== "forwarding" || this.answerEnded) return;
    // The client's body broke off: the client left, which is no fault of the worker's.
    if (this.req.destroyed && !this.req.complete) {
      this.clientClosed();
      return;
    }
    const { code } = err as NodeJS.ErrnoException;
    if (this.sendAgainIfUnseen(code)) return;
    if (err.message === "bad upgrade") {
      this.workerFailed("answered 101 Switching Protocols, which is not forwarded");
      return;
    }
    // undici's socket errors say how the connection ended in fixed words; other codes say enough.
    const detail =
      code === "UND_ERR_SOCKET" ? `the connection closed (${err.message})` : (code ?? "unknown error");
    this.workerFailed(detail, true);
  }

  /**
   * Sends the request to another worker, once, when the failed one cannot have seen it: it was
   * never written (the connection could not be made), or the connection was reset by a worker
   * process that then turned out to have exited. A reset from an exiting process means it closed
   * with our bytes unread (one that read the whole request and died would have closed cleanly);
   * a worker that resets and lives on may have read it, so that is a 502. Only bodies held whole
   * here can be sent again, and only before any of the answer arrived. True when it took over.
   */
  private sendAgainIfUnseen(code: string | undefined): boolean {
    const { lease } = this;
    if (this.sentAgain || this.answerBegan || this.wholeBody === undefined || lease === undefined)
      return false;
    // undici starts the request (onRequestStart) only once it has a connection to write it on.
    if (this.controller === undefined) {
      this.sendAgain(lease, `the connection could not be made (${code ?? "unknown error"})`);
      return true;
    }
    if (code !== "ECONNRESET" && code !== "EPIPE") return false;
    void lease.exitedWithin(EXIT_SEEN_MS).then((exited) => {
      if (this.state !== "forwarding" || this.lease !== lease) return;
      if (exited) this.sendAgain(lease, `it exited before reading the request (${code})`);
      else this.workerFailed(code, true);
    });
    return true;
  }

  private sendAgain(lease: Lease, detail: string): void {
    this.sentAgain = true;
    this.lease = undefined;
    this.controller = undefined;
    // The worker is suspect, so the pool lends it nothing until it answers /ping (or restarts).
    lease.release({ kind: "unreachable", detail });
    this.state = "new";
    this.rearm();
    // Not from inside undici's error handling, which may still be walking the failed connection's queue.
    setImmediate(() => {
      if (this.state === "new") this.enqueue(true);
    });
  }

  private forward(baseUrl: string): void {
    const { req } = this;
    const upstream = parsedUpstream(baseUrl);
    const headers = endToEndHeaders(req.headers);
    headers.host = upstream.host;
    // This server already answered `100 Continue` to the client; the worker gets the body at once.
    delete headers.expect;
    if (this.wholeBody !== undefined) {
      // Sent again after a worker that never saw it: the body was read whole the first time.
      this.dispatch(upstream, headers, this.wholeBody);
      return;
    }
    const length =
      req.headers["content-length"] === undefined && req.headers["transfer-encoding"] === undefined
        ? 0
        : Number(req.headers["content-length"]);
    if (Number.isInteger(length) && length <= WHOLE_BODY_BYTES) {
      // A small body of known size goes to the worker in one write with the headers; until it is
      // whole, the worker has nothing and the client is the one waited for.
      const chunks: Buffer[] = [];
      const onData = (chunk: Buffer): void => {
        chunks.push(chunk);
        this.progress("client-body");
      };
      const onEnd = (): void => {
        this.bodyEnded = true;
        if (this.state !== "forwarding") return;
        const body = chunks.length === 0 ? null : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        this.wholeBody = body ?? null;
        this.dispatch(upstream, headers, this.wholeBody);
        this.rearm();
      };
      req.on("data", onData);
      req.on("end", onEnd);
      this.detachBody = () => {
        req.off("data", onData);
        req.off("end", onEnd);
      };
    } else {
      // Pumped by hand rather than piped, to know whom the upload waits for: the client (nothing
      // is held back) or the worker (it does not take what the client sent). undici destroys a
      // body it could not send; the client's request stays whole for the 502.
      const body = new PassThrough();
      body.on("error", () => undefined);
      const onDrain = (): void => {
        this.bodyHeld = false;
        req.resume();
        this.rearm();
      };
      const onData = (chunk: Buffer): void => {
        this.progress("client-body");
        if (body.destroyed || body.write(chunk) || this.bodyHeld) return;
        this.bodyHeld = true;
        req.pause();
        body.once("drain", onDrain);
        this.rearm();
      };
      const onEnd = (): void => {
        this.bodyEnded = true;
        body.end();
        this.rearm();
      };
      req.on("data", onData);
      req.on("end", onEnd);
      this.detachBody = () => {
        req.off("data", onData);
        req.off("end", onEnd);
        body.off("drain", onDrain);
      };
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
      suspect ? { kind: "unreachable", detail } : undefined,
    );
  }

  /** Whom the exchange waits for now; undefined once it is over. */
  private whom(): Waiting | undefined {
    if (this.state === "queued") return "slot";
    if (this.state !== "forwarding") return undefined;
    // A client that does not read blocks the worker, whatever else is going on.
    if (this.clientBlocked) return "client-read";
    // The worker has all the client sent so far and waits for more, or has nothing yet.
    if (!this.bodyEnded && !this.bodyHeld) return "client-body";
    return "worker";
  }

  /** Starts the clock of whoever is waited for now, afresh when that changed. */
  private rearm(): void {
    const next = this.whom();
    if (next === this.waitingFor) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.waitingFor = next;
    if (next === undefined) return;
    const { responseTimeoutMs, clientBodyTimeoutMs, clientReadTimeoutMs } = this.target;
    const ms =
      next === "client-body"
        ? clientBodyTimeoutMs
        : next === "client-read"
          ? clientReadTimeoutMs
          : responseTimeoutMs;
    this.timer = setTimeout(() => this.timedOut(next), ms);
  }

  /** `party` did something: its clock starts over, if it is the one running. */
  private progress(party: Waiting): void {
    if (this.waitingFor === party) this.timer?.refresh();
  }

  private timedOut(waited: Waiting): void {
    const { model, version, pool, responseTimeoutMs, clientBodyTimeoutMs } = this.target;
    const seconds = responseTimeoutMs / 1000;
    switch (waited) {
      case "slot": {
        const why =
          pool.readyCount() === 0
            ? "no worker is ready (they are starting or restarting)"
            : "every worker stayed busy";
        this.reply(503, `Model "${model}" version ${version}: ${why}; the request waited ${seconds} s.`);
        return;
      }
      case "worker": {
        const detail = `no answer within ${seconds} s`;
        this.reply(504, `The worker of model "${model}" version ${version} sent ${detail}.`, {
          kind: "stuck",
          detail,
        });
        return;
      }
      case "client-body":
        // The worker is not at fault: its request is aborted and its slot given back as it is.
        this.reply(
          408,
          `The request body did not arrive in time: nothing came for ${clientBodyTimeoutMs / 1000} s (client_body_timeout).`,
          undefined,
          true,
        );
        return;
      case "client-read":
        // The answer has begun (it is what the client does not read): all that is left is a cut.
        this.res.destroy();
        this.finish(this.res.headersSent ? this.res.statusCode : undefined);
        return;
    }
  }

  /**
   * Ends the exchange with an error status: a JSON error if nothing was sent yet, else a cut
   * connection. `close`: the connection is not kept (the client's unread body makes it unusable).
   */
  private reply(
    status: number,
    message: string,
    fault?: { kind: WorkerFault; detail: string },
    close = false,
  ): void {
    if (this.state === "done") return;
    if (this.res.headersSent) this.res.destroy();
    else writeReply(this.req, this.res, jsonError(status, message, close ? { Connection: "close" } : {}));
    this.finish(status, fault);
  }

  /** The one end of every exchange: releases what it holds and reports, once. */
  private finish(status: number | undefined, fault?: { kind: WorkerFault; detail: string }): void {
    const was = this.state;
    if (was === "done") return;
    this.state = "done";
    this.rearm();
    // What the client still sends is read and dropped, so it is not stuck behind a paused request.
    this.detachBody?.();
    if (!this.bodyEnded) this.req.resume();
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
    });
  }
}
