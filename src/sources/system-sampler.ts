import { setTimeout as sleep } from "node:timers/promises";

import type { Logger } from "../log.js";
import { queryGpus, type GpuQueryResult, type GpuSample } from "./gpu.js";
import { HostSampler, type HostSample } from "./host.js";

/** One sampling of the machine: the host (undefined when disabled or unreadable) and its GPUs. */
export interface SystemSample {
  host: HostSample | undefined;
  /** Empty when there is no GPU, nvidia-smi is missing or failing, or sampling is disabled. */
  gpus: GpuSample[];
}

/** What a {@link SystemSampler} reads, how often, and where its samples and complaints go. */
export interface SystemSamplerOptions {
  /** Seconds between samples (`metric_time_interval`). */
  intervalSeconds: number;
  /** False under `disable_system_metrics`, which in TorchServe stops GPU collection too. */
  host: boolean;
  gpu: {
    /** The nvidia-smi executable (a name on PATH or a path). */
    command: string;
    timeoutMs: number;
    /** `number_of_gpu`: undefined reports every device, 0 runs no nvidia-smi. */
    maxDevices: number | undefined;
    /**
     * Whether GPU metrics were asked for: a missing nvidia-smi is then a WARN, else one INFO line
     * (most hosts beside TorchServe have no GPU). Default: `number_of_gpu` set, or a command other
     * than the default `nvidia-smi` (`nvidia_smi_path`).
     */
    requested?: boolean;
  };
  logger: Logger;
  /** Receives every sample, the first one before {@link SystemSampler.start} resolves. */
  onSample(sample: SystemSample): void;
  /** Replaces the default reader of /proc and `/` (tests). */
  hostSampler?: HostSampler;
  /** How long start() lets the CPU counters run before the first sample; default 250 ms. */
  cpuPrimeMs?: number;
}

type GpuState = "ok" | Extract<GpuQueryResult, { ok: false }>["reason"];

/**
 * Samples host and GPUs every `intervalSeconds` on a timer that does not keep the process
 * alive. Never lets two samplings overlap; logs a problem once when it starts and once when
 * it ends, not on every sample.
 */
export class SystemSampler {
  private readonly options: SystemSamplerOptions;
  private readonly hostSampler: HostSampler;
  private timer: NodeJS.Timeout | undefined;
  private starting: Promise<void> | undefined;
  private stopped = false;
  private inFlight: Promise<SystemSample> | undefined;
  private hostFailing = false;
  private gpuState: GpuState = "ok";

  constructor(options: SystemSamplerOptions) {
    if (!Number.isFinite(options.intervalSeconds) || options.intervalSeconds <= 0) {
      throw new RangeError(
        `intervalSeconds must be a positive number of seconds, got ${String(options.intervalSeconds)}`,
      );
    }
    this.options = options;
    this.hostSampler = options.hostSampler ?? new HostSampler();
  }

  /** Takes the first sample (CPU measured over ~250 ms), delivers it, then starts the timer. */
  start(): Promise<void> {
    this.starting ??= this.begin();
    return this.starting;
  }

  /** Stops the timer; a sampling under way still completes and is delivered. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Samples now, delivers the sample to onSample like a scheduled one, and returns it. While a
   * sampling is under way, returns that one instead of starting another.
   */
  sampleNow(): Promise<SystemSample> {
    this.inFlight ??= this.sampleOnce().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async begin(): Promise<void> {
    if (this.options.host) {
      // CPU utilization is a difference of two readings: without this the first sample has none.
      // A failure here shows again, and is logged, in the sample that follows.
      await this.hostSampler.primeCpu().catch(() => undefined);
      await sleep(this.options.cpuPrimeMs ?? 250);
    }
    await this.sampleNow();
    // With system metrics disabled there is nothing to read again.
    if (this.stopped || !this.options.host) return;
    this.timer = setInterval(() => {
      // A tick that finds the previous sampling still running skips rather than piling up.
      if (this.inFlight === undefined) void this.sampleNow();
    }, this.options.intervalSeconds * 1000);
    this.timer.unref();
  }

  private async sampleOnce(): Promise<SystemSample> {
    const [host, gpus] = await Promise.all([this.readHost(), this.readGpus()]);
    const sample: SystemSample = { host, gpus };
    try {
      this.options.onSample(sample);
    } catch (error) {
      this.options.logger.error(`system metrics: onSample failed: ${describe(error)}`);
    }
    return sample;
  }

  private async readHost(): Promise<HostSample | undefined> {
    if (!this.options.host) return undefined;
    const { logger } = this.options;
    try {
      const sample = await this.hostSampler.sample();
      if (this.hostFailing) logger.info("host metrics: reading the host works again");
      this.hostFailing = false;
      return sample;
    } catch (error) {
      if (!this.hostFailing) {
        logger.warn(`host metrics: ${describe(error)}; CPU, memory and disk metrics have no new values`);
      }
      this.hostFailing = true;
      return undefined;
    }
  }

  private async readGpus(): Promise<GpuSample[]> {
    // TorchServe's disable_system_metrics stops GPU collection too; a missing nvidia-smi stays missing.
    if (!this.options.host || this.gpuState === "missing") return [];
    const { gpu, logger } = this.options;
    const result = await queryGpus({
      command: gpu.command,
      timeoutMs: gpu.timeoutMs,
      maxDevices: gpu.maxDevices,
    });
    const previous = this.gpuState;
    this.gpuState = result.ok ? "ok" : result.reason;
    if (result.ok) {
      if (previous !== "ok") logger.info(`GPU metrics: ${gpu.command} answers again`);
      return result.gpus;
    }
    if (result.reason === "missing") {
      const requested = gpu.requested ?? (gpu.maxDevices !== undefined || gpu.command !== "nvidia-smi");
      if (requested) logger.warn(`nvidia-smi not found at ${gpu.command}: GPU metrics disabled`);
      else logger.info(`no nvidia-smi on this host (${gpu.command}): no GPU metrics`);
    } else if (result.reason !== previous) {
      logger.warn(`GPU metrics: ${result.message}; GPU metrics have no values until it recovers`);
    }
    return [];
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
