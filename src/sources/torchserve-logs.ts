import { join } from "node:path";

import type { Logger } from "../log.js";
import { FileFollower } from "./file-follower.js";

/** Which of TorchServe's log files a line came from. */
export type TorchServeLogFile = "ts_metrics" | "model_metrics" | "access_log";

/** The three files, in the order they are started and stopped. */
export const TORCHSERVE_LOG_FILES: readonly TorchServeLogFile[] = [
  "ts_metrics",
  "model_metrics",
  "access_log",
];

/**
 * A file the follower reads: the three above, and `ts_log` (ts_log.log in LOG_LOCATION), whose
 * copies of their records are not counted again: it says what they leave out (metric types).
 */
export type FollowedFile = TorchServeLogFile | "ts_log";

/** Where TorchServe's files are and where their lines go. */
export interface TorchServeLogFollowerOptions {
  /** TorchServe's `LOG_LOCATION`: holds `access_log.log`. */
  logDir: string;
  /** TorchServe's `METRICS_LOCATION`: holds `ts_metrics.log` and `model_metrics.log`; default logDir. */
  metricsDir?: string;
  /** Read what the live files already hold first; default false: only lines written after start(). */
  fromStart?: boolean;
  /** Milliseconds between looks at each file; default 500. */
  pollMs?: number;
  /** Longest line handed on whole, in characters (see FileFollowerOptions.maxLineChars). */
  maxLineChars?: number;
  /** Where appearance, rotation, truncation and read errors are reported. */
  logger: Logger;
  /** Whether ts_log.log is followed too; default true. */
  followTsLog?: boolean;
  /** Receives each complete line without its `\n`, in file order per file. */
  onLine(line: string, file: FollowedFile): void;
}

/**
 * Follows the files a TorchServe (0.8 – 0.12) writes in `metrics_mode=log` or `legacy`:
 * `ts_metrics.log` and `model_metrics.log` in its METRICS_LOCATION, `access_log.log` in its
 * LOG_LOCATION, each like `tail -F`.
 *
 * log4j2 rolls each file daily and at 100 MB: it closes the file, renames it to its archive
 * name, creates a new empty file, then gzips the archive and deletes the uncompressed copy. The
 * follower holds the old file open, so it reads the old file to its end (even once deleted)
 * before the new one from its start: no line is lost or handed on twice. What it cannot see is a
 * file that took the name and was rolled away again between two of its looks (two rollovers of
 * one file within `pollMs`): that file's lines are lost. At 100 MB per file this takes 200 MB/s
 * of one file with the default 500 ms, about 250,000 requests per second for ts_metrics.log
 * (~800 bytes per request); TorchServe serves a few thousand at most, so it does not happen.
 */
export class TorchServeLogFollower {
  /** The path followed for each file. */
  readonly paths: Readonly<Record<FollowedFile, string>>;
  private readonly followers: ReadonlyMap<FollowedFile, FileFollower>;
  private readonly seen = new Map<FollowedFile, { count: number; lastAt: number | undefined }>();

  constructor(options: TorchServeLogFollowerOptions) {
    const metricsDir = options.metricsDir ?? options.logDir;
    this.paths = Object.freeze({
      ts_metrics: join(metricsDir, "ts_metrics.log"),
      model_metrics: join(metricsDir, "model_metrics.log"),
      access_log: join(options.logDir, "access_log.log"),
      ts_log: join(options.logDir, "ts_log.log"),
    });
    const followers = new Map<FollowedFile, FileFollower>();
    const files: FollowedFile[] = [...TORCHSERVE_LOG_FILES];
    if (options.followTsLog !== false) files.push("ts_log");
    for (const file of files) {
      const seen = { count: 0, lastAt: undefined as number | undefined };
      this.seen.set(file, seen);
      followers.set(
        file,
        new FileFollower({
          path: this.paths[file],
          logger: options.logger,
          fromStart: options.fromStart,
          pollMs: options.pollMs,
          maxLineChars: options.maxLineChars,
          onLine: (line) => {
            seen.count++;
            seen.lastAt = Date.now();
            options.onLine(line, file);
          },
        }),
      );
    }
    this.followers = followers;
  }

  /** Opens the files that exist (at their end, unless fromStart) and starts following all three. */
  async start(): Promise<void> {
    await Promise.all([...this.followers.values()].map((f) => f.start()));
  }

  /** Looks at every file now and resolves once what was written before the call is handed on. */
  async readNow(): Promise<void> {
    await Promise.all([...this.followers.values()].map((f) => f.readNow()));
  }

  /** Stops following and closes the files; cannot be started again. */
  async stop(): Promise<void> {
    await Promise.all([...this.followers.values()].map((f) => f.stop()));
  }

  /**
   * When the last line of any of the given files was handed on (epoch milliseconds), or
   * undefined if none yet. Default: the two metric files, since the access log is written in
   * every metrics_mode, even `prometheus`, which writes no metric line.
   */
  lastLineAt(files: readonly FollowedFile[] = ["ts_metrics", "model_metrics"]): number | undefined {
    let last: number | undefined;
    for (const file of files) {
      const at = this.seen.get(file)?.lastAt;
      if (at !== undefined && (last === undefined || at > last)) last = at;
    }
    return last;
  }

  /** How many lines of the file were handed on since start(). */
  linesRead(file: FollowedFile): number {
    return this.seen.get(file)?.count ?? 0;
  }
}
