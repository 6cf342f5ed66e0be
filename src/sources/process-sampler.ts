import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";

import type { Logger } from "../log.js";
import { readProcess, type ProcessSample } from "./process.js";

/** Event-loop delay over one sampling interval, in seconds: how late a timer fired. */
export interface EventLoopDelay {
  p50: number;
  p99: number;
  max: number;
}

/** A {@link ProcessSample} with the event-loop delay measured since the previous one. */
export interface ProcessReading extends ProcessSample {
  /** Undefined when nothing was measured since the previous reading. */
  eventLoopDelay: EventLoopDelay | undefined;
}

/** Options of {@link ProcessSampler}. */
export interface ProcessSamplerOptions {
  /** Milliseconds between readings. */
  intervalMs: number;
  logger: Logger;
  /** Receives every reading, the first one before {@link ProcessSampler.start} resolves. */
  onSample(reading: ProcessReading): void;
  /** Replaces the reader of this process (tests). */
  read?: () => Promise<ProcessSample>;
}

/**
 * How often the event-loop delay timer fires, in ms. A blocked loop delays the next firing by the
 * whole block, so a coarse resolution still sees every long block; a fine one would wake an idle
 * service many times a second.
 */
const EVENT_LOOP_RESOLUTION_MS = 100;

/**
 * Reads the service's own process on a timer of its own that does not keep the process alive,
 * independent of host sampling (which `disable_system_metrics` turns off), so a scrape never reads
 * the OS. Never lets two readings overlap; a failing reading is logged once until one succeeds.
 */
export class ProcessSampler {
  private readonly options: ProcessSamplerOptions;
  private readonly delay: IntervalHistogram;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private failing = false;

  constructor(options: ProcessSamplerOptions) {
    if (!Number.isFinite(options.intervalMs) || options.intervalMs <= 0) {
      throw new RangeError(`intervalMs must be a positive number, got ${String(options.intervalMs)}`);
    }
    this.options = options;
    this.delay = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  }

  /** Takes the first reading, then reads every intervalMs. */
  async start(): Promise<void> {
    this.delay.enable();
    await this.sampleNow();
    this.timer ??= setInterval(() => {
      if (this.inFlight === undefined) void this.sampleNow();
    }, this.options.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and the event-loop delay measurement. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.delay.disable();
  }

  /** Reads now and delivers the reading; while one is under way, returns that one. */
  sampleNow(): Promise<void> {
    this.inFlight ??= this.sampleOnce().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async sampleOnce(): Promise<void> {
    const { logger } = this.options;
    let sample: ProcessSample;
    try {
      sample = await (this.options.read ?? readProcess)();
    } catch (error) {
      if (!this.failing) logger.warn(`process metrics: ${describe(error)}; they have no new values`);
      this.failing = true;
      return;
    }
    if (this.failing) logger.info("process metrics: reading this process works again");
    this.failing = false;
    const reading: ProcessReading = { ...sample, eventLoopDelay: this.takeDelay() };
    try {
      this.options.onSample(reading);
    } catch (error) {
      logger.error(`process metrics: onSample failed: ${describe(error)}`);
    }
  }

  /**
   * The delay measured since the last call, then starts afresh. The histogram holds the time
   * between two firings of its timer (nanoseconds), so the resolution itself is taken off.
   */
  private takeDelay(): EventLoopDelay | undefined {
    const h = this.delay;
    const late = (ns: number): number => Math.max(0, ns / 1e6 - EVENT_LOOP_RESOLUTION_MS) / 1000;
    const measured =
      h.count > 0
        ? { p50: late(h.percentile(50)), p99: late(h.percentile(99)), max: late(h.max) }
        : undefined;
    h.reset();
    return measured;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
