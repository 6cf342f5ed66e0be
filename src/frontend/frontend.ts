import { performance } from "node:perf_hooks";
import { Agent } from "undici";
import type { ModelWorkerConfig } from "../config/types.js";
import type { Logger } from "../log.js";
import type { WorkerState } from "../telemetry/lifecycle-metrics.js";
import type { LifecycleRecorder } from "../telemetry/lifecycle-recorder.js";
import type { MetricRecorder } from "../telemetry/recorder.js";
import type { ExchangeTarget } from "./exchange.js";
import { ManagedWorker } from "./worker-process.js";
import { WorkerPool, type WorkerSlot } from "./worker-pool.js";

/** One served model version. */
export type ServedVersion = ExchangeTarget;

/** Whether every model version has a ready worker (`/ping`). */
export interface FrontendHealth {
  healthy: boolean;
  /** `<model> <version>` of each version without a ready worker. */
  notReady: string[];
}

/** What {@link InferenceFrontend.drain} did: queued requests answered 503, requests still with a worker at the deadline. */
export interface DrainResult {
  refused: number;
  unfinished: number;
}

/** How the frontend starts its workers. */
export interface InferenceFrontendOptions {
  models: readonly ModelWorkerConfig[];
  jobQueueSize: number;
  /** default_response_timeout, for versions that set no responseTimeout. */
  defaultResponseTimeoutSeconds: number;
  /** default_startup_timeout, for versions that set no startupTimeout. */
  defaultStartupTimeoutSeconds: number;
  /** client_body_timeout: a client may go this long without sending a byte of its unfinished body; default 30. */
  clientBodyTimeoutSeconds?: number;
  /** client_read_timeout: a client may leave an answer unread this long while more waits; default 60. */
  clientReadTimeoutSeconds?: number;
  recorder: MetricRecorder;
  /** Where worker states and restarts and each version's queue capacity are recorded, if anywhere. */
  lifecycle?: LifecycleRecorder;
  logger: Logger;
  /** Every `[METRICS]` line a managed worker prints. */
  onMetricLine(line: string): void;
  /** Hears managed workers becoming ready and dying, by worker name (for series expiry). */
  onWorkerLife?(workerName: string, alive: boolean): void;
  /** Working directory of managed workers; default this process's. */
  cwd?: string;
  /** Overrides for managed workers' supervision (tests use short times). */
  workerTimings?: {
    backoff?: { initialMs: number; maxMs: number };
    stopGraceMs?: number;
  };
}

/**
 * The models behind the inference frontend: a worker pool per model version, fed by workers that
 * already run (`url`) or that it starts and supervises (`command`), and the queue-depth gauge.
 */
export class InferenceFrontend {
  private readonly versions = new Map<string, Map<string, ServedVersion>>();
  private readonly defaults = new Map<string, string>();
  private readonly workers: ManagedWorker[] = [];

  constructor(private readonly options: InferenceFrontendOptions) {
    const { recorder } = options;
    const depths = new Map<string, Map<string, number>>();
    for (const config of options.models) {
      const slots: WorkerSlot[] = [];
      for (let i = 0; i < config.workers; i++) {
        if (config.url !== undefined) {
          const url = config.url;
          // A worker we do not run cannot be restarted; its failed request is simply aborted.
          slots.push({ url: () => url, fault: () => undefined });
          options.lifecycle?.workerMoved(config.model, config.version, undefined, "ready");
        } else {
          // Called only after the pool below exists: a worker becomes ready after start().
          const worker = this.managedWorker(config, () => pool.dispatch());
          this.workers.push(worker);
          slots.push({
            url: () => worker.url,
            fault: (kind, detail) => worker.fault(kind, detail),
            exitedWithin: (url, ms) => worker.exitedWithin(url, ms),
          });
        }
      }
      const modelDepths = depths.get(config.model) ?? new Map<string, number>();
      depths.set(config.model, modelDepths);
      const pool = new WorkerPool(slots, options.jobQueueSize, (depth) => {
        // The gauge is per model, as autoscalers scale models: the sum over its versions.
        modelDepths.set(config.version, depth);
        recorder.recordQueueDepth(
          config.model,
          [...modelDepths.values()].reduce((a, b) => a + b, 0),
        );
      });
      const byVersion = this.versions.get(config.model) ?? new Map<string, ServedVersion>();
      byVersion.set(config.version, {
        model: config.model,
        version: config.version,
        pool,
        // undici keeps a Pool per worker address (managed workers come back on new ports); the
        // exchange keeps the time limits, so undici's own are off.
        dispatcher: new Agent({ connections: config.workers, headersTimeout: 0, bodyTimeout: 0 }),
        responseTimeoutMs: 1000 * (config.responseTimeoutSeconds ?? options.defaultResponseTimeoutSeconds),
        clientBodyTimeoutMs: 1000 * (options.clientBodyTimeoutSeconds ?? 30),
        clientReadTimeoutMs: 1000 * (options.clientReadTimeoutSeconds ?? 60),
      });
      this.versions.set(config.model, byVersion);
      if (config.isDefault) this.defaults.set(config.model, config.version);
      options.lifecycle?.jobQueueSize(config.model, config.version, options.jobQueueSize);
      recorder.recordQueueDepth(config.model, 0);
    }
  }

  /** Unhealthy while some model version has no ready worker (TorchServe's `/ping`). */
  health(): FrontendHealth {
    const notReady: string[] = [];
    for (const byVersion of this.versions.values()) {
      for (const served of byVersion.values()) {
        if (served.pool.readyCount() === 0) notReady.push(`${served.model} ${served.version}`);
      }
    }
    return { healthy: notReady.length === 0, notReady };
  }

  /** Starts the managed workers; resolves once each has been ready once (requests queue meanwhile). */
  async start(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.start()));
  }

  /** The model version a request names, its default when it names none; undefined if unknown. */
  lookup(model: string, version: string | undefined): ServedVersion | "unknown-model" | "unknown-version" {
    const byVersion = this.versions.get(model);
    if (byVersion === undefined) return "unknown-model";
    const served = byVersion.get(version ?? this.defaults.get(model) ?? "");
    return served ?? "unknown-version";
  }

  /**
   * Takes no more requests: every queued one is answered 503 ("the service is stopping") at once,
   * and so is every later one. Resolves when no request is with a worker any more, or at
   * `deadline` (a `performance.now()` time) if some still are; stop() then ends those.
   */
  async drain(deadline: number): Promise<DrainResult> {
    const pools = [...this.versions.values()].flatMap((byVersion) =>
      [...byVersion.values()].map((served) => served.pool),
    );
    let refused = 0;
    for (const pool of pools) refused += pool.close();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, deadline - performance.now()));
    });
    try {
      await Promise.race([Promise.all(pools.map((pool) => pool.idle())), late]);
    } finally {
      clearTimeout(timer);
    }
    return { refused, unfinished: this.inFlight() };
  }

  /** Requests with a worker now, over every model version. */
  inFlight(): number {
    let count = 0;
    for (const byVersion of this.versions.values()) {
      for (const served of byVersion.values()) count += served.pool.lent();
    }
    return count;
  }

  /** Refuses queued requests, stops managed workers (SIGTERM, then SIGKILL) and closes connections. */
  async stop(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const byVersion of this.versions.values()) {
      for (const served of byVersion.values()) {
        served.pool.close();
        closing.push(served.dispatcher.destroy());
      }
    }
    await Promise.all([...closing, ...this.workers.map((w) => w.stop())]);
  }

  private managedWorker(config: ModelWorkerConfig, onReady: () => void): ManagedWorker {
    const { logger, recorder, lifecycle, cwd, workerTimings } = this.options;
    let state: WorkerState | undefined = "starting";
    lifecycle?.workerVersion(config.model, config.version);
    lifecycle?.workerMoved(config.model, config.version, undefined, state);
    return new ManagedWorker({
      model: config.model,
      version: config.version,
      command: config.command ?? "",
      cwd,
      logger,
      readyTimeoutMs: 1000 * (config.startupTimeoutSeconds ?? this.options.defaultStartupTimeoutSeconds),
      ...workerTimings,
      onRecovered: onReady,
      onMetricLine: (line) => this.options.onMetricLine(line),
      onExit: (exit) => {
        lifecycle?.workerRestarted(config.model, config.version, exit.reason);
        this.options.onWorkerLife?.(exit.workerName, false);
      },
      onState: (next) => {
        const to = next === "stopped" ? undefined : next;
        if (to !== state) lifecycle?.workerMoved(config.model, config.version, state, to);
        state = to;
      },
      onReady: (ready) => {
        recorder.recordWorkerLoad({ workerName: ready.workerName, loadTimeMs: ready.loadTimeMs });
        this.options.onWorkerLife?.(ready.workerName, true);
        onReady();
      },
    });
  }
}
