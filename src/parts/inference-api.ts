import type { RequestListener } from "node:http";
import type { ListenAddress } from "../config/types.js";
import type { InferenceFrontend } from "../frontend/frontend.js";
import { acceptHalfClosedClients } from "../frontend/inference-server.js";
import type { Logger } from "../log.js";
import type { ConnectionLimits, TlsFiles } from "../server/listen.js";
import { isLoopbackAddress } from "../server/loopback.js";
import { Listener } from "./listener.js";
import type { ServicePart } from "./part.js";

/** The inference frontend and the address that serves it. */
export interface InferenceApiOptions {
  address: ListenAddress;
  tls: TlsFiles | undefined;
  /** Timeouts and the connection cap; default DEFAULT_LIMITS. */
  limits?: ConnectionLimits | undefined;
  frontend: InferenceFrontend;
  /** The inference handler (createInferenceHandler over `frontend`), which counts its responses. */
  handler: RequestListener;
  /** Hears every response Node answers by itself (400, 408, 431). */
  onClientErrorResponse(status: number): void;
  /** How many model versions are served, for the start message. */
  versions: number;
  logger: Logger;
}

/**
 * The inference API and the frontend behind it as one part. Start: listen, then start the
 * managed workers (requests queue until one is ready). Drain: stop accepting, answer every queued
 * request 503 at once, let dispatched ones finish by the deadline. Stop: cut every connection
 * left, then stop the workers, so that no request reaches a stopping worker.
 */
export class InferenceApiPart implements ServicePart {
  readonly name = "inference API";
  private readonly listener: Listener;
  private stopping = false;

  constructor(private readonly options: InferenceApiOptions) {
    this.listener = new Listener({
      name: this.name,
      address: options.address,
      tls: options.tls,
      limits: options.limits,
      handler: options.handler,
      onClientErrorResponse: (status) => options.onClientErrorResponse(status),
      logger: options.logger,
    });
  }

  /** `http://127.0.0.1:8080` once listening. */
  get url(): string | undefined {
    return this.listener.url;
  }

  /** https: serves a reloaded certificate and key to new connections. */
  replaceTls(files: TlsFiles): void {
    this.listener.replaceTls(files);
  }

  activity(): string | undefined {
    return this.url === undefined ? undefined : `inference API on ${this.url}`;
  }

  async start(): Promise<void> {
    const { logger, frontend, versions, address } = this.options;
    await this.listener.start();
    const server = this.listener.server?.server;
    if (server !== undefined) acceptHalfClosedClients(server);
    const url = this.url ?? "";
    logger.info(`inference API listening on ${url} (${versions} model version${versions === 1 ? "" : "s"})`);
    const bound = this.listener.server?.server.address();
    const host = typeof bound === "object" && bound !== null ? bound.address : "";
    if (!isLoopbackAddress(host)) {
      const port = this.listener.server?.port ?? address.port;
      logger.warn(
        `inference_address: listening on ${host}, beyond loopback: POST ${url}/metric-lines has no ` +
          `authentication, so anyone who can reach this port can write model metrics. Bind 127.0.0.1 ` +
          `(inference_address=${address.protocol}://127.0.0.1:${port}) or let only ` +
          `trusted hosts reach it (firewall, or an authenticating proxy in front).`,
      );
    }
    frontend.start().catch((err: unknown) => {
      // A stop before every worker was ready once is no error.
      if (!this.stopping) logger.error(`workers: ${String(err)}`);
    });
  }

  async drain(deadline: number): Promise<void> {
    this.stopping = true;
    const { frontend, logger } = this.options;
    const [, result] = await Promise.all([this.listener.drain(deadline), frontend.drain(deadline)]);
    if (result.refused > 0) {
      logger.info(`stopping: answered ${result.refused} queued inference request(s) with 503`);
    }
    if (result.unfinished > 0) {
      logger.warn(
        `stopping: ${result.unfinished} inference request(s) still with a worker at the end of drain_timeout; cutting them`,
      );
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.listener.stop();
    await this.options.frontend.stop();
  }
}
