import type { MeterProvider } from "@opentelemetry/sdk-metrics";
import type { Logger } from "../log.js";
import type { ServicePart } from "./part.js";

/** The service's MeterProvider and its push readers. */
export interface TelemetryPartOptions {
  provider: MeterProvider;
  /** One line per push reader (where it sends, how often); empty: no push. */
  describe: readonly string[];
  /**
   * Collects the pull reader unscraped; run every `collectEveryMs` while pushing, since the SDK
   * keeps every push's collection for the pull reader until it collects (see Scraper.drain).
   */
  collectPull(): Promise<void>;
  collectEveryMs: number;
  /** How long the final export may take before it is given up. */
  shutdownTimeoutMs: number;
  logger: Logger;
}

/**
 * The OpenTelemetry pipeline as a part. It starts first and stops last: its stop shuts the
 * provider down, which makes each push reader's final export, after every other part has
 * stopped and every response of the stop has been counted. The final export is bounded, so
 * that a collector that hangs cannot hold the exit.
 */
export class TelemetryPart implements ServicePart {
  readonly name = "OTLP push";
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: TelemetryPartOptions) {}

  activity(): string | undefined {
    return this.options.describe.length > 0 ? "OTLP push" : undefined;
  }

  start(): Promise<void> {
    const { describe, logger, collectEveryMs } = this.options;
    for (const line of describe) logger.info(line);
    if (describe.length > 0) {
      this.timer = setInterval(() => {
        this.options.collectPull().catch((err: unknown) => logger.warn(`collection: ${String(err)}`));
      }, collectEveryMs);
      this.timer.unref();
    }
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    const { provider, shutdownTimeoutMs, logger } = this.options;
    await provider.shutdown({ timeoutMillis: shutdownTimeoutMs }).catch((err: unknown) => {
      logger.warn(
        `final OTLP export abandoned after ${shutdownTimeoutMs} ms: ${err instanceof Error ? err.message : String(err)}`,
      );
    });
  }
}
