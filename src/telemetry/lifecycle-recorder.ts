import type { ProcessReading } from "../sources/process-sampler.js";
import {
  APPLIED_LINES,
  EVENT_LOOP_DELAY_MAX,
  EVENT_LOOP_DELAY_P50,
  EVENT_LOOP_DELAY_P99,
  JOB_QUEUE_SIZE,
  OTLP_EXPORTS,
  PROCESS_CPU,
  PROCESS_MAX_FDS,
  PROCESS_OPEN_FDS,
  PROCESS_RESIDENT_MEMORY,
  PROCESS_START_TIME,
  REQUESTS_IN_FLIGHT,
  RESTART_REASONS,
  WORKER_RESTARTS,
  WORKER_STATES,
  WORKERS,
  type RestartReason,
  type WorkerState,
} from "./lifecycle-metrics.js";
import type { MetricRecorder, OwnSeries } from "./recorder.js";

/** Options of {@link LifecycleRecorder}. */
export interface LifecycleRecorderOptions {
  /**
   * Hears each gauge series when it is first written, so that series expiry can keep it: a worker
   * count or a queue capacity that has not changed for an hour is still current.
   */
  onGauge?(series: OwnSeries): void;
}

/**
 * Records the lifecycle and self metrics of lifecycle-metrics.ts. Series are bound once and their
 * updates wait for the next collection, so counting an applied line costs a map lookup and an
 * addition.
 */
export class LifecycleRecorder {
  private readonly series = new Map<string, OwnSeries | null>();
  /** Workers per state, per model version (`model\0version`). */
  private readonly workers = new Map<string, Map<WorkerState, number>>();
  private cpuSeconds = 0;

  /** Starts the OTLP export counters at 0, so a chart or rule finds them before the first push. */
  constructor(
    private readonly recorder: MetricRecorder,
    private readonly options: LifecycleRecorderOptions = {},
  ) {
    this.update(OTLP_EXPORTS, 0, { result: "success" });
    this.update(OTLP_EXPORTS, 0, { result: "failure" });
  }

  /** Counts one `[METRICS]` line applied from `source` (`worker`, `http`, `file`, …). */
  lineApplied(source: string): void {
    this.update(APPLIED_LINES, 1, { source });
  }

  /** Counts one OTLP export by its result. */
  otlpExport(ok: boolean): void {
    this.update(OTLP_EXPORTS, 1, { result: ok ? "success" : "failure" });
  }

  /**
   * Starts a model version's restart counters at 0 for every reason, so that the first restart is
   * an increase (a counter that appears at 1 shows none) and a chart finds the series.
   */
  workerVersion(model: string, version: string): void {
    for (const reason of RESTART_REASONS) this.workerRestarted(model, version, reason, 0);
  }

  /** Counts a restart of a worker of this model version, and why its process ended. */
  workerRestarted(model: string, version: string, reason: RestartReason, count = 1): void {
    this.update(WORKER_RESTARTS, count, { model_name: model, model_version: version, reason });
  }

  /**
   * Moves one worker of a model version from one state to another; `from` undefined adds a worker,
   * `to` undefined removes one. Every state of the version is written, zeros too, so that a rule
   * can compare `state="ready"` with 0.
   */
  workerMoved(
    model: string,
    version: string,
    from: WorkerState | undefined,
    to: WorkerState | undefined,
  ): void {
    const key = `${model}\u0000${version}`;
    let counts = this.workers.get(key);
    if (counts === undefined) {
      counts = new Map(WORKER_STATES.map((s) => [s, 0]));
      this.workers.set(key, counts);
    }
    if (from !== undefined) counts.set(from, Math.max(0, (counts.get(from) ?? 0) - 1));
    if (to !== undefined) counts.set(to, (counts.get(to) ?? 0) + 1);
    for (const state of WORKER_STATES) {
      this.update(WORKERS, counts.get(state) ?? 0, { model_name: model, model_version: version, state });
    }
  }

  /** Sets the queue capacity (job_queue_size) of a model version. */
  jobQueueSize(model: string, version: string, size: number): void {
    this.update(JOB_QUEUE_SIZE, size, { model_name: model, model_version: version });
  }

  /** Sets how many requests of a model version are dispatched to its workers and not finished. */
  requestsInFlight(model: string, version: string, count: number): void {
    this.update(REQUESTS_IN_FLIGHT, count, { model_name: model, model_version: version });
  }

  /** Records a reading of the service's own process. */
  process(reading: ProcessReading): void {
    // The counter holds the process' cumulative CPU time: add what was used since the last reading.
    const used = reading.cpuSeconds - this.cpuSeconds;
    if (used > 0) {
      this.update(PROCESS_CPU, used, {});
      this.cpuSeconds = reading.cpuSeconds;
    }
    this.update(PROCESS_RESIDENT_MEMORY, reading.residentBytes, {});
    this.update(PROCESS_START_TIME, reading.startTimeSeconds, {});
    if (reading.openFds !== undefined) this.update(PROCESS_OPEN_FDS, reading.openFds, {});
    if (reading.maxFds !== undefined) this.update(PROCESS_MAX_FDS, reading.maxFds, {});
    const delay = reading.eventLoopDelay;
    if (delay !== undefined) {
      this.update(EVENT_LOOP_DELAY_P50, delay.p50, {});
      this.update(EVENT_LOOP_DELAY_P99, delay.p99, {});
      this.update(EVENT_LOOP_DELAY_MAX, delay.max, {});
    }
  }

  /** Adds to a counter or sets a gauge, as recordOwn does by the metric's type. */
  private update(name: string, value: number, labels: Readonly<Record<string, string>>): void {
    const series = this.bound(name, labels);
    if (series !== undefined) this.recorder.recordOwn(series, value);
  }

  /** The series of `name` with these labels, bound on first use (null: the catalog dropped it). */
  private bound(name: string, labels: Readonly<Record<string, string>>): OwnSeries | undefined {
    // Label values come from configuration and fixed sets (sources, reasons, states): few keys.
    const key = `${name}\u0000${Object.values(labels).join("\u0000")}`;
    let series = this.series.get(key);
    if (series === undefined) {
      series = this.recorder.ownSeries(name, labels) ?? null;
      this.series.set(key, series);
      if (series?.instrument.definition.type === "gauge") this.options.onGauge?.(series);
    }
    return series ?? undefined;
  }
}
