import { stat } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import type { Logger } from "../log.js";
import { SilenceWatch } from "../sources/silence-watch.js";
import { TORCHSERVE_LOG_FILES, type TorchServeLogFollower } from "../sources/torchserve-logs.js";
import type { ServicePart } from "./part.js";

/** A running TorchServe's log files, and how to tell that its metric lines stopped coming. */
export interface TorchServeLogsOptions {
  follower: TorchServeLogFollower;
  /** The directories followed, for messages. */
  dirs: readonly string[];
  /** torchserve_log_from_start: the files' existing lines (the backlog) are read first. */
  fromStart: boolean;
  /** Milliseconds without a metric line after which a WARN says why there may be none (asked at each check). */
  silenceAfterMs: number | (() => number);
  onSilence(silentMs: number): void;
  logger: Logger;
  /** Milliseconds between backlog progress lines; default 5000. */
  progressEveryMs?: number;
  /**
   * Without fromStart: reads back the files' last lines to prime gauges, started once the files
   * are open at their end and never awaited (the ports do not wait for it).
   */
  prime?: () => Promise<void>;
}

/**
 * TorchServe's log follower and its silence watch as one part. Without torchserve_log_from_start
 * the files are opened at their end before start() resolves. With it, start() resolves at once
 * and the backlog is read behind the open ports, with a progress line every few seconds and one
 * when it is done: a 1 GiB backlog takes most of a minute, and a service that listens only
 * afterwards looks dead to its health checks.
 */
export class TorchServeLogsPart implements ServicePart {
  readonly name = "TorchServe log follower";
  private readonly silence: SilenceWatch;
  private progress: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: TorchServeLogsOptions) {
    this.silence = new SilenceWatch({
      afterMs: options.silenceAfterMs,
      lastHeard: () => options.follower.lastLineAt(),
      onSilence: (ms) => options.onSilence(ms),
    });
  }

  activity(): string {
    return `following TorchServe's logs in ${this.options.dirs.join(" and ")}`;
  }

  async start(): Promise<void> {
    const { follower, fromStart } = this.options;
    if (!fromStart) {
      await follower.start();
      this.silence.start();
      void this.options.prime?.();
      return;
    }
    await this.readBacklog();
  }

  stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.progress);
    this.silence.stop();
    return this.options.follower.stop();
  }

  /** Starts reading the backlog in the background, reporting its progress. */
  private async readBacklog(): Promise<void> {
    const { follower, logger, progressEveryMs = 5000 } = this.options;
    const bytes = await backlogBytes(Object.values(follower.paths));
    const lines = (): number => TORCHSERVE_LOG_FILES.reduce((sum, file) => sum + follower.linesRead(file), 0);
    logger.info(
      `torchserve_log_from_start=true: reading ${formatMiB(bytes)} of TorchServe's existing log lines; ` +
        "the ports are open meanwhile and /metrics grows as they are read",
    );
    const began = performance.now();
    this.progress = setInterval(() => {
      logger.info(`TorchServe backlog: ${lines()} lines read so far, ${seconds(began)} s`);
    }, progressEveryMs);
    // Progress lines are no reason for the process to stay up.
    this.progress.unref();
    this.silence.start();
    void follower.start().then(() => {
      clearInterval(this.progress);
      if (this.stopped) return;
      logger.info(`TorchServe backlog read: ${lines()} lines in ${seconds(began)} s; following new lines`);
    });
  }
}

/** The files' sizes added up; a file that is missing or unreadable counts 0 (the follower says why). */
async function backlogBytes(paths: readonly string[]): Promise<number> {
  const sizes = await Promise.all(
    paths.map((path) =>
      stat(path).then(
        (s) => s.size,
        () => 0,
      ),
    ),
  );
  return sizes.reduce((a, b) => a + b, 0);
}

function formatMiB(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function seconds(since: number): string {
  return ((performance.now() - since) / 1000).toFixed(1);
}
