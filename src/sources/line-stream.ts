import type { Readable } from "node:stream";

import { readCappedLines } from "../frontend/capped-lines.js";
import type { Logger } from "../log.js";

/** What a {@link readLineStream} reads and where its lines go. */
export interface LineStreamOptions {
  /** The stream, e.g. `process.stdin` for `docker logs -f torchserve 2>&1 | serve-metrics --stdin`. */
  input: Readable;
  /** Names the stream in log messages, e.g. `standard input`. */
  name: string;
  /** Receives each line, UTF-8 decoded (bad bytes as U+FFFD), without its `\n` or a `\r` before it. */
  onLine(line: string): void;
  /**
   * Receives the first `maxLineBytes` bytes of a longer line, whose rest is dropped unread into
   * memory; default: it is only counted, and the first one logged.
   */
  onCut?(head: string): void;
  /** Longest line handed on whole, in bytes; default 65536 (the metric line parser's limit). */
  maxLineBytes?: number;
  logger: Logger;
}

/** How a stream's reading ended. */
export interface LineStreamEnd {
  /** `end`: the writer closed it (EOF); `error`: reading it failed; `stopped`: stop() was called. */
  reason: "end" | "error" | "stopped";
  /** The read error's message, for `error`. */
  error?: string;
  /** Lines handed on whole. */
  lines: number;
  /** Lines longer than maxLineBytes. */
  cutLines: number;
}

/** A stream being read line by line. */
export interface LineStreamReader {
  /** Resolves once the stream has ended, failed or been stopped, after its last line; never rejects. */
  readonly ended: Promise<LineStreamEnd>;
  /** When the last whole line was handed on (epoch milliseconds), or undefined before the first. */
  lastLineAt(): number | undefined;
  /** Stops reading and destroys the stream. */
  stop(): void;
}

const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

/**
 * Reads lines from a byte stream until it ends, holding at most `maxLineBytes` of a line in
 * memory. Never throws: a failing onLine is logged (the first failure, then a count at the end)
 * and the lines after it still come; a read error ends the reading like EOF does.
 */
export function readLineStream(options: LineStreamOptions): LineStreamReader {
  const { input, name, logger } = options;
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  if (!Number.isSafeInteger(maxLineBytes) || maxLineBytes <= 0) {
    throw new RangeError(
      `maxLineBytes must be a positive whole number of bytes, got ${String(options.maxLineBytes)}`,
    );
  }
  let lines = 0;
  let cutLines = 0;
  let failures = 0;
  let lastAt: number | undefined;
  let finish: (end: LineStreamEnd) => void = () => undefined;
  let finished = false;
  const ended = new Promise<LineStreamEnd>((resolve) => {
    finish = (end) => {
      if (finished) return;
      finished = true;
      if (failures > 1) logger.error(`handling ${failures} lines of ${name} failed in all`);
      resolve(end);
    };
  });
  const settle = (reason: LineStreamEnd["reason"], error?: string): void => {
    finish(error === undefined ? { reason, lines, cutLines } : { reason, error, lines, cutLines });
  };

  const guarded = (handle: () => void): void => {
    try {
      handle();
    } catch (error) {
      // The consumer's failure must not stop the reading or lose the lines after this one.
      if (failures++ === 0) logger.error(`handling a line of ${name} failed: ${describe(error)}`);
    }
  };
  readCappedLines(input, maxLineBytes, {
    line: (text) => {
      lines++;
      lastAt = Date.now();
      guarded(() => options.onLine(text));
    },
    cut: (head) => {
      if (cutLines++ === 0) {
        logger.warn(
          `${name}: a line longer than ${maxLineBytes} bytes was cut; further ones are only counted`,
        );
      }
      if (options.onCut !== undefined) guarded(() => options.onCut?.(head));
    },
  });
  // Registered after readCappedLines' own: a last line without its newline comes first.
  input.once("end", () => settle("end"));
  input.on("error", (error) => settle("error", describe(error)));
  // Destroyed without an end (by stop() or by its owner).
  input.once("close", () => settle(input.readableEnded ? "end" : "stopped"));

  return {
    ended,
    lastLineAt: () => lastAt,
    stop: () => {
      settle("stopped");
      input.destroy();
    },
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
