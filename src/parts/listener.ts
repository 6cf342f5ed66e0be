import type { RequestListener, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { ListenAddress } from "../config/types.js";
import type { Logger } from "../log.js";
import { answerConnectRequests } from "../server/connect-requests.js";
import {
  answerClientErrors,
  listen,
  type ConnectionLimits,
  type ListeningServer,
  type TlsFiles,
} from "../server/listen.js";

/** What a {@link Listener} serves, and where. */
export interface ListenerOptions {
  address: ListenAddress;
  handler: RequestListener;
  tls: TlsFiles | undefined;
  /** Timeouts and the connection cap; default DEFAULT_LIMITS. */
  limits?: ConnectionLimits | undefined;
  /** Hears every response Node answers by itself (400, 408, 431), for Requests4XX. */
  onClientErrorResponse(status: number): void;
  /** Names the server in messages (`metrics API`). */
  name: string;
  logger: Logger;
}

/** How long stop() waits for the server to report itself closed after cutting every connection. */
const CLOSED_WITHIN_MS = 2000;

/**
 * One listening server with the stop a service needs: drain() stops accepting connections at once,
 * closes idle ones, answers the requests in flight with `Connection: close` and waits for their
 * responses to end (by the deadline); stop() then destroys every connection still open (idle
 * keep-alive ones, clients stalled mid-request, the rest at the deadline).
 */
export class Listener {
  private listening: ListeningServer | undefined;
  /** Responses begun and not yet ended: what a drain waits for. */
  private readonly open = new Set<ServerResponse>();
  private draining = false;
  private closing: Promise<void> | undefined;
  private closed = false;
  /** Heard when the last open response ends. */
  private readonly emptied: (() => void)[] = [];

  constructor(private readonly options: ListenerOptions) {}

  /** `http://127.0.0.1:8082` once listening. */
  get url(): string | undefined {
    return this.listening?.url;
  }

  /** The server, once listening. */
  get server(): ListeningServer | undefined {
    return this.listening;
  }

  /** Listens; rejects on listen errors (EADDRINUSE, EACCES) with the address in the message. */
  async start(): Promise<void> {
    const { handler } = this.options;
    this.listening = await listen(
      this.options.address,
      (req, res) => {
        this.open.add(res);
        // During a drain, each answer is the connection's last, so its socket ends with it.
        if (this.draining) res.shouldKeepAlive = false;
        res.once("close", () => this.ended(res));
        handler(req, res);
      },
      this.options.tls,
      this.options.limits,
    );
    answerClientErrors(this.listening.server, (status) => this.options.onClientErrorResponse(status));
    answerConnectRequests(this.listening.server, (status) => this.options.onClientErrorResponse(status));
  }

  /** https: serves `files` to new connections; throws when OpenSSL cannot use them. */
  replaceTls(files: TlsFiles): void {
    this.listening?.replaceTls(files);
  }

  /** Responses in flight now. */
  inFlight(): number {
    return this.open.size;
  }

  /** Stops accepting and waits, until `deadline`, for the responses in flight to end. */
  async drain(deadline: number): Promise<void> {
    const listening = this.listening;
    if (listening === undefined || this.draining) return;
    this.draining = true;
    for (const res of this.open) if (!res.headersSent) res.shouldKeepAlive = false;
    // Stops accepting now and closes idle connections; cuts the rest at the deadline at the latest.
    this.closing = listening.close(Math.max(0, deadline - performance.now())).then(() => {
      this.closed = true;
    });
    await this.responsesEnded(deadline - performance.now());
  }

  /**
   * Destroys every connection still open and resolves once the server is closed and every
   * response has heard its connection close (so that whoever owns a request has seen it end).
   */
  async stop(): Promise<void> {
    const listening = this.listening;
    if (listening === undefined) return;
    this.draining = true;
    const started = performance.now();
    if (!this.closed) {
      // Grace 0: whatever a drain left (or everything, without one) is cut now.
      const closed = Promise.all([listening.close(0), this.closing]);
      await raceTimer(closed, CLOSED_WITHIN_MS);
      this.closed = true;
    }
    // Node reports the server closed before the responses on the cut connections hear of it.
    await this.responsesEnded(CLOSED_WITHIN_MS - (performance.now() - started));
    // Nothing here may hold the stop: the process exits all the same, so say what was left.
    if (this.open.size > 0) {
      this.options.logger.warn(
        `${this.options.name}: ${this.open.size} response(s) still open ${CLOSED_WITHIN_MS} ms after every ` +
          "connection was cut; not waiting for them",
      );
    }
  }

  /** Resolves once no response is open, or after `withinMs`. */
  private async responsesEnded(withinMs: number): Promise<void> {
    if (this.open.size === 0) return;
    await raceTimer(new Promise<void>((resolve) => this.emptied.push(resolve)), Math.max(0, withinMs));
  }

  private ended(res: ServerResponse): void {
    this.open.delete(res);
    if (!this.draining) return;
    // A response that went out with keep-alive before the drain leaves an idle connection.
    this.listening?.server.closeIdleConnections();
    if (this.open.size === 0) for (const heard of this.emptied.splice(0)) heard();
  }
}

/** Waits for `promise`, or `ms`, whichever comes first. */
async function raceTimer(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([promise, late]);
  clearTimeout(timer);
}
