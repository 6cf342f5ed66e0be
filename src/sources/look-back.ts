import { constants, createReadStream } from "node:fs";
import { lstat, open, readdir } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";

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
  return (await readTail(path, maxBytes)).lines;
}

/** {@link readTailLines} with the file's size (0 when there is no regular file to read). */
async function readTail(path: string, maxBytes: number): Promise<{ lines: string[]; size: number }> {
  let handle;
  try {
    // Non-blocking: a FIFO at the path must not hold a thread until a writer comes.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY).catch(
      () => undefined,
    );
    if (handle === undefined) return { lines: [], size: 0 };
    const stats = await handle.stat();
    if (!stats.isFile()) return { lines: [], size: 0 };
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
    return { lines: completeLines(bytes.subarray(0, filled), start > 0), size: stats.size };
  } catch {
    return { lines: [], size: 0 };
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * The whole lines of a window read from a file's end. The last piece has no newline yet (or is
 * empty). When the window does not start at the file's start, its first piece is the rest of a
 * line it cut, or (the extra byte before the window a newline) nothing: left out either way.
 */
function completeLines(bytes: Buffer, cut: boolean): string[] {
  const lines = bytes.toString("utf8").split("\n");
  lines.pop();
  if (cut) lines.shift();
  return lines;
}

/**
 * A live file's rotated copies in its directory, newest first: log4j2's `<name>.<date>.log.gz`
 * (TorchServe's pattern, `ts_metrics.07-Dec.log.gz`), the same uncompressed
 * (`ts_metrics.2026-12-07-15.log`, or log4j2's copy while it gzips it), or log4j 1's
 * `<name>.log.<date>`. Newest by modification time, as the names' dates (day and month only) do
 * not sort. Regular files only.
 */
export async function rotatedFiles(path: string): Promise<string[]> {
  const dir = dirname(path);
  const live = basename(path);
  const stem = live.endsWith(".log") ? live.slice(0, -".log".length) : live;
  const names = await readdir(dir).catch(() => [] as string[]);
  const prefix = `${stem}.`;
  const rotated = names.filter(
    (n) =>
      n !== live &&
      n.startsWith(prefix) &&
      (/^.+\.log(?:\.gz)?$/.test(n.slice(prefix.length)) || /^log\..+$/.test(n.slice(prefix.length))),
  );
  const found: { path: string; mtimeMs: number }[] = [];
  for (const name of rotated) {
    const candidate = join(dir, name);
    const stats = await lstat(candidate).catch(() => undefined);
    if (stats?.isFile() === true) found.push({ path: candidate, mtimeMs: stats.mtimeMs });
  }
  return found.sort((x, y) => y.mtimeMs - x.mtimeMs).map((f) => f.path);
}

/** The newest of {@link rotatedFiles}, or undefined when there is none. */
export async function newestRotatedFile(path: string): Promise<string | undefined> {
  return (await rotatedFiles(path))[0];
}

/**
 * The complete lines among the last `maxBytes` of a gzip file's content, oldest first: the
 * content is streamed through node:zlib and only the window (and one chunk) is held, whatever
 * its size. Undefined for a file that cannot be read or is no whole gzip (one log4j2 is still
 * writing, say).
 */
async function readGzipTailLines(path: string, maxBytes: number): Promise<string[] | undefined> {
  const window = maxBytes + 1;
  const chunks: Buffer[] = [];
  let held = 0;
  let total = 0;
  try {
    // pipeline, not pipe: a read error ends the whole chain instead of leaving gunzip waiting.
    await pipeline(createReadStream(path), createGunzip(), async (gunzipped: AsyncIterable<Buffer>) => {
      for await (const chunk of gunzipped) {
        chunks.push(chunk);
        held += chunk.length;
        total += chunk.length;
        while (chunks.length > 1 && held - (chunks[0]?.length ?? 0) >= window)
          held -= chunks.shift()?.length ?? 0;
      }
    });
  } catch {
    return undefined;
  }
  const bytes = Buffer.concat(chunks);
  // As readTail: the byte before the maxBytes window, when there is one, tells if its first line is whole.
  return completeLines(bytes.subarray(Math.max(0, bytes.length - window)), total > window);
}

// Rotated copies tried at most, newest first, when a newer one is no whole gzip.
const ROTATED_TRIES = 3;

/**
 * The lines to look back into for one live file, oldest first: its last `maxBytes`, and when it
 * is shorter than that (just rotated), the end of its newest rotated copy (gzip or not) up to the
 * same total, before them. A gzip copy that does not read whole (log4j2 still compressing it)
 * gives way to the next newest (its uncompressed original, then). Only read: what the lines are
 * used for is the caller's.
 */
export async function readLookBackLines(path: string, maxBytes: number = LOOK_BACK_BYTES): Promise<string[]> {
  const live = await readTail(path, maxBytes);
  const left = maxBytes - live.size;
  if (left <= 0) return live.lines;
  for (const rotated of (await rotatedFiles(path)).slice(0, ROTATED_TRIES)) {
    const older = rotated.endsWith(".gz")
      ? await readGzipTailLines(rotated, left)
      : (await readTail(rotated, left)).lines;
    if (older !== undefined) return [...older, ...live.lines];
  }
  return live.lines;
}

/**
 * The last lines of the files a TorchServe follower reads that say what held before it started:
 * the two metric files (gauges) and ts_log.log (types, models); not the access log (no gauges).
 * Each file's newest rotated copy is read too when the live file is shorter than `maxBytes`
 * ({@link readLookBackLines}), so a TorchServe that rotated just before still shows its gauges.
 */
export async function lookBack(
  paths: Readonly<Record<"ts_metrics" | "model_metrics" | "ts_log", string>>,
  maxBytes: number = LOOK_BACK_BYTES,
): Promise<{ file: "ts_metrics" | "model_metrics" | "ts_log"; lines: string[] }[]> {
  const files = ["ts_metrics", "model_metrics", "ts_log"] as const;
  return Promise.all(
    files.map(async (file) => ({ file, lines: await readLookBackLines(paths[file], maxBytes) })),
  );
}
