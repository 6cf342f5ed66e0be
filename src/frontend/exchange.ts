import {
  request as httpRequest,
  type Agent,
  type ClientRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from "node:http";
import { request as httpsRequest } from "node:https";
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
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
  /** Connections to this version's workers are reused across requests. */
  agent: Agent;
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
}

/** Bodies (either way) of at most this many bytes, with a Content-Length, are read whole and sent at once. */
const WHOLE_BODY_BYTES = 64 * 1024;

interface Upstream {
  protocol: string;
  hostname: string;
  port: string;
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
    upstream = {
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port,
      host: url.host,
      prefix: url.pathname.replace(/\/$/, ""),
    };
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
 */
export class InferenceExchange implements PoolWaiter {
  private state: State = "new";
  private readonly arrival = performance.now();
  private dispatchedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private lease: Lease | undefined;
  private upstream: ClientRequest | undefined;
  private answer: IncomingMessage | undefined;
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
    this.res.once("close", () => {
      // Once the status has gone out, the response was sent, however much of its body arrived.
      if (!this.res.writableFinished) this.finish(this.res.headersSent ? this.res.statusCode : undefined);
    });
    let lease: Lease | undefined;
    try {
      lease = this.target.pool.acquire(this);
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
    this.reply(503, `Model "${this.target.model}" cannot take requests: ${reason.message}.`);
  }

  private forward(baseUrl: string): void {
    const { req } = this;
    const upstream = parsedUpstream(baseUrl);
    const send = upstream.protocol === "https:" ? httpsRequest : httpRequest;
    let request: ClientRequest;
    try {
      request = send({
        protocol: upstream.protocol,
        hostname: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: `${upstream.prefix}${this.path}`,
        headers: { ...endToEndHeaders(req.headers), host: upstream.host },
        agent: this.target.agent,
      });
    } catch (err) {
      // Only for what Node refuses to send; the client's request is at fault, not the worker.
      this.reply(400, `The request cannot be forwarded: ${(err as Error).message}`);
      return;
    }
    this.upstream = request;
    request.on("response", (answer) => this.answered(answer));
    request.on("upgrade", (answer: IncomingMessage, socket: Socket) => {
      socket.destroy();
      this.workerFailed(`answered ${answer.statusCode ?? "?"} Switching Protocols, which is not forwarded`);
    });
    request.on("error", (err: NodeJS.ErrnoException) => {
      // Bytes after a whole answer (a body on a 204, a Content-Length one short) break only the
      // connection, which Node then closes; the answer itself still ends and is forwarded.
      if (this.answer?.complete === true) return;
      this.workerFailed(err.code ?? err.message, true);
    });
    const length = Number(req.headers["content-length"]);
    if (Number.isInteger(length) && length <= WHOLE_BODY_BYTES) {
      // A small body of known size goes to the worker in one write with the headers, without a pipe.
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        if (this.upstream === request && this.state === "forwarding")
          request.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      });
    } else {
      req.pipe(request);
    }
  }

  private answered(answer: IncomingMessage): void {
    if (this.state !== "forwarding") {
      answer.destroy();
      return;
    }
    this.timer?.refresh();
    this.answer = answer;
    const status = answer.statusCode ?? 0;
    if (status < 200 || status > 599) {
      answer.destroy();
      this.workerFailed(`answered with the invalid status ${String(status).padStart(3, "0")}`);
      return;
    }
    if (status === 204 || status === 304) {
      // A body after a bodiless answer is a common worker bug, and its bytes may arrive after
      // the connection was lent to the next request, which would fail on them: not reused.
      const socket = answer.socket; // Node detaches it from the answer before "end"
      answer.once("end", () => socket.destroy());
    }
    answer.on("close", () => {
      // Unless "end" came first, the answer was cut short: the worker died or broke the protocol.
      if (this.state === "forwarding") this.workerFailed("ended its answer before it was complete", true);
    });
    const headers = endToEndHeaders(answer.headers);
    const length = Number(answer.headers["content-length"]);
    if (Number.isInteger(length) && length <= WHOLE_BODY_BYTES) {
      // A small answer of known size goes out in one write, headers included, without a pipe.
      const chunks: Buffer[] = [];
      answer.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        this.timer?.refresh();
      });
      answer.on("end", () => {
        this.answerEnded = true;
        if (this.state !== "forwarding") return;
        this.send(status, headers, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      });
      return;
    }
    if (!this.send(status, headers, undefined)) return;
    answer.on("data", () => this.timer?.refresh());
    answer.pipe(this.res);
    answer.on("end", () => {
      this.answerEnded = true;
      this.finish(status);
    });
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

  private timedOut(): void {
    const { model, version, pool, responseTimeoutMs } = this.target;
    const seconds = responseTimeoutMs / 1000;
    if (this.state === "queued") {
      const why =
        pool.readyCount() === 0
          ? "no worker is ready (they are starting or restarting)"
          : "every worker stayed busy";
      this.reply(503, `Model "${model}" version ${version}: ${why}; the request waited ${seconds} s.`);
    } else if (this.state === "forwarding") {
      const detail = `no answer within ${seconds} s`;
      this.reply(504, `The worker of model "${model}" version ${version} sent ${detail}.`, {
        kind: "stuck",
        detail,
      });
    }
  }

  /** Ends the exchange with an error status: a JSON error if nothing was sent yet, else a cut connection. */
  private reply(status: number, message: string, fault?: { kind: WorkerFault; detail: string }): void {
    if (this.state === "done") return;
    if (this.res.headersSent) this.res.destroy();
    else writeReply(this.req, this.res, jsonError(status, message));
    this.finish(status, fault);
  }

  /** The one end of every exchange: releases what it holds and reports, once. */
  private finish(status: number | undefined, fault?: { kind: WorkerFault; detail: string }): void {
    const was = this.state;
    if (was === "done") return;
    this.state = "done";
    clearTimeout(this.timer);
    const now = performance.now();
    if (was === "queued") this.target.pool.cancel(this);
    // Whatever ended it first, the worker stops working for a request nobody waits for.
    if (!this.answerEnded) this.upstream?.destroy();
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
