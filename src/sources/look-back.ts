import { constants } from "node:fs";
import { open } from "node:fs/promises";

/**
 * How much of each of TorchServe's files is read back at start to prime gauges (and types and
 * models): 4 MiB, about 5,000 requests' records of ts_metrics.log, or an hour of an idle
 * TorchServe's minute bursts of host and GPU metrics.
 */
export const LOOK_BACK_BYTES = 4 * 1024 * 1024;

/**
 * The complete lines among the last `maxBytes` of a file as it is now, oldest first: a line cut
 * by the window's start is left out. Missing, unreadable or non-regular files give none (the
 * follower reports them). Reads at most `maxBytes` (and one byte before), whatever the file's size.
 */
export async function readTailLines(path: string, maxBytes: number = LOOK_BACK_BYTES): Promise<string[]> {
  let handle;
  try {
    // Non-blocking: a FIFO at the path must not hold a thread until a writer comes.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY).catch(
      () => undefined,
    );
    if (handle === undefined) return [];
    const stats = await handle.stat();
    if (!stats.isFile()) return [];
    // One byte more than the window: whether it starts a line tells if its first line is whole.
    const start = Math.max(0, stats.size - maxBytes - 1);
    const length = stats.size - start;
    const bytes = Buffer.alloc(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await handle.read(bytes, filled, length - filled, start + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    const text = bytes.subarray(0, filled).toString("utf8");
    const lines = text.split("\n");
    // The last piece has no newline yet (or is empty). Before the window: the rest of a line cut
    // by it, or (the extra byte a newline) nothing.
    lines.pop();
    if (start > 0) lines.shift();
    return lines;
  } catch {
    return [];
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * The last lines of the files a TorchServe follower reads that say what held before it started:
 * the two metric files (gauges) and ts_log.log (types, models); not the access log (no gauges).
 */
export async function lookBack(
  paths: Readonly<Record<"ts_metrics" | "model_metrics" | "ts_log", string>>,
  maxBytes: number = LOOK_BACK_BYTES,
): Promise<{ file: "ts_metrics" | "model_metrics" | "ts_log"; lines: string[] }[]> {
  const files = ["ts_metrics", "model_metrics", "ts_log"] as const;
  return Promise.all(
    files.map(async (file) => ({ file, lines: await readTailLines(paths[file], maxBytes) })),
  );
}
