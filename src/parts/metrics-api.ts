import type { RequestListener } from "node:http";
import type { ListenAddress } from "../config/types.js";
import type { Logger } from "../log.js";
import type { ConnectionLimits, TlsFiles } from "../server/listen.js";
import { Listener } from "./listener.js";
import type { ServicePart } from "./part.js";

/** Where the metrics API listens and what it answers with. */
export interface MetricsApiOptions {
  address: ListenAddress;
  tls: TlsFiles | undefined;
  /** Timeouts and the connection cap; default DEFAULT_LIMITS. */
  limits?: ConnectionLimits | undefined;
  /** The metrics handler (createMetricsHandler), which counts its own responses. */
  handler: RequestListener;
  /** Hears every response Node answers by itself (400, 408, 431). */
  onClientErrorResponse(status: number): void;
  logger: Logger;
}

/** The metrics API (`GET /metrics`) as a part: listens at start, finishes scrapes in flight on drain. */
export class MetricsApiPart implements ServicePart {
  readonly name = "metrics API";
  private readonly listener: Listener;

  constructor(private readonly options: MetricsApiOptions) {
    this.listener = new Listener({ name: this.name, ...options });
  }

  /** `http://127.0.0.1:8082` once listening. */
  get url(): string | undefined {
    return this.listener.url;
  }

  /** https: serves a reloaded certificate and key to new connections. */
  replaceTls(files: TlsFiles): void {
    this.listener.replaceTls(files);
  }

  activity(): string | undefined {
    return this.url === undefined ? undefined : `metrics API on ${this.url}/metrics`;
  }

  async start(): Promise<void> {
    await this.listener.start();
    this.options.logger.info(`metrics API listening on ${this.url ?? ""}/metrics`);
  }

  drain(deadline: number): Promise<void> {
    return this.listener.drain(deadline);
  }

  stop(): Promise<void> {
    return this.listener.stop();
  }
}
