import { constants, type BigIntStats, type StatsBase } from "node:fs";
import { open, stat, type FileHandle } from "node:fs/promises";
import { StringDecoder } from "node:string_decoder";

import type { Logger } from "../log.js";

/** Which file a {@link FileFollower} follows and where its lines go. */
export interface FileFollowerOptions {
  /** The path to follow; it may not exist yet, and may be rotated or truncated. */
  path: string;
  /** Receives each complete line, without its `\n` (a `\r` before it is kept). */
  onLine(line: string): void;
  /** Where appearance, disappearance, rotation, truncation and read errors are reported. */
  logger: Logger;
  /** Milliseconds between polls; default 500. */
  pollMs?: number;
  /** Read what the file already holds at start(); default false: only what is appended after. */
  fromStart?: boolean;
  /**
   * Longest line handed on whole, in characters; default 65536 (the metric line parser's limit).
   * A longer line is handed on as its first `maxLineChars + 1` characters, so that a consumer
   * with the same limit sees it is too long, and the rest of it is dropped unread into memory.
   */
  maxLineChars?: number;
}

/** The file a follower has open, and how far it has read it. */
interface OpenFile {
  handle: FileHandle;
  // Identity of the file behind the handle; the path naming another one means rotation.
  dev: bigint;
  ino: bigint;
  offset: number;
  // Per file: bytes of a character split across reads wait here for the rest.
  decoder: StringDecoder;
  // What was read at [0, head.length) and [offset - tail.length, offset): a copytruncate that
  // regrew past the offset between two polls leaves the size unsuspicious, but rarely these.
  head: Buffer;
  tail: Buffer;
  // The modification time at the last check: with the size, it saves the check when idle.
  mtimeNs: bigint;
}

type FollowState = "none" | "following" | "missing" | "disappeared" | `skipped ${string}`;

const READ_CHUNK_BYTES = 64 * 1024;
const HEAD_BYTES = 256;
const TAIL_BYTES = 64;
const DEFAULT_MAX_LINE_CHARS = 64 * 1024;
// Non-blocking: if the path was swapped for a FIFO or a device since it was stat'ed as a regular
// file, the open returns at once instead of holding a thread-pool thread until a writer comes.
// O_NOCTTY: a terminal swapped in must not become the process's controlling terminal.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/**
 * Follows a regular file like `tail -F`: polls it, hands on each complete line in order, and
 * survives the file appearing late, disappearing, being rotated (renamed and recreated) or
 * truncated (copytruncate), even when it regrew past the read offset between two polls.
 * Anything else at the path (FIFO, device, directory, socket) is skipped, never opened for
 * reading. Never throws into the caller; problems are logged once per change of state.
 */
export class FileFollower {
  private readonly options: FileFollowerOptions;
  private readonly pollMs: number;
  private readonly maxLineChars: number;
  private file: OpenFile | undefined;
  // The current line's text so far, at most maxLineChars + 1 characters.
  private partial = "";
  // The current line outgrew maxLineChars: the rest of it, up to its newline, is dropped.
  private overlong = false;
  private starting: Promise<void> | undefined;
  // The last look started; each waits for the one before, so two looks never read one file at
  // once (that would hand on its bytes twice).
  private polling: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  // Only the very first look honours fromStart=false; a file appearing later is new, read whole.
  private firstLook = true;
  // The file that was at the path when the first look could not open it (unreadable), and its
  // size then: if it is the one opened later, reading starts there, so no line written while it
  // was unreadable is lost, and none from before start() is counted.
  private waitedFrom: { dev: bigint; ino: bigint; size: number } | undefined;
  // The last reported state of the path, and the last read error while one persists, so that
  // each is logged once when it changes, not every poll.
  private state: FollowState = "none";
  private failing: string | undefined;

  constructor(options: FileFollowerOptions) {
    const pollMs = options.pollMs ?? 500;
    if (!Number.isFinite(pollMs) || pollMs <= 0) {
      throw new RangeError(`pollMs must be a positive number of milliseconds, got ${String(options.pollMs)}`);
    }
    const maxLineChars = options.maxLineChars ?? DEFAULT_MAX_LINE_CHARS;
    if (!Number.isSafeInteger(maxLineChars) || maxLineChars <= 0) {
      throw new RangeError(
        `maxLineChars must be a positive whole number of characters, got ${String(options.maxLineChars)}`,
      );
    }
    this.options = options;
    this.pollMs = pollMs;
    this.maxLineChars = maxLineChars;
  }

  /**
   * Opens the file if it exists (at its end, unless fromStart) and starts polling; resolves once
   * that first look is done, so anything appended afterwards will be seen. Idempotent.
   */
  start(): Promise<void> {
    this.starting ??= this.stopped ? Promise.resolve() : this.poll().then(() => this.schedule());
    return this.starting;
  }

  /**
   * Looks at the path now, in turn with the timer's polls, and resolves once everything written
   * before the call has been handed on (a partial last line stays held). After stop(), does
   * nothing. Lets a caller catch up without waiting for the next poll, e.g. before a final count.
   */
  readNow(): Promise<void> {
    return this.stopped ? Promise.resolve() : this.poll();
  }

  /**
   * Stops polling, waits for a poll under way, and closes the file. A partial last line is
   * dropped. The follower cannot be started again.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.starting;
    await this.polling;
    await this.close();
    this.partial = "";
    this.overlong = false;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.poll().then(() => this.schedule());
    }, this.pollMs);
    // Following a file is never a reason for the process to stay alive.
    this.timer.unref();
  }

  /** Queues one look at the path after any under way. Never rejects. */
  private poll(): Promise<void> {
    this.polling = this.polling.then(() => this.pollOnce());
    return this.polling;
  }

  /** One look at the path: follows rotation and truncation, reads new bytes. Never rejects. */
  private async pollOnce(): Promise<void> {
    const { path, logger } = this.options;
    try {
      await this.look();
      if (this.failing !== undefined) logger.info(`reading ${path} again`);
      this.failing = undefined;
    } catch (error) {
      // Retried every poll; said again only when the problem changes.
      const message = describe(error);
      if (message !== this.failing) logger.warn(`cannot read ${path}: ${message}`);
      this.failing = message;
    }
  }

  private async look(): Promise<void> {
    // A poll already scheduled when stop() came must not reopen the file stop() closes.
    if (this.stopped) return;
    const { path, logger } = this.options;
    const current = await statOrMissing(path);
    const file = this.file;

    if (file !== undefined) {
      if (current === undefined) {
        // Renamed or deleted. A writer may still append to the old file until it reopens the
        // path, so keep reading it until a new file takes the name.
        this.report("disappeared", "warn", `${path} disappeared; waiting for it to come back`);
        await this.readNew(file);
        return;
      }
      if (current.dev === file.dev && current.ino === file.ino) {
        if (await wasTruncated(file, current)) {
          // copytruncate: the same file starts over. What was read stays read.
          logger.info(`${path} was truncated; reading it again from its start`);
          this.flushPartial(file);
          restart(file);
        }
        this.report("following", "info", `following ${path}`);
        await this.readNew(file);
        return;
      }
      // Another file has the name (logrotate's create): finish the old one, then take the new.
      try {
        await this.readNew(file);
      } catch (error) {
        // Whatever the old file still holds cannot be had; the new one must not wait for it.
        logger.warn(`could not finish reading the rotated ${path}: ${describe(error)}`);
      }
      this.flushPartial(file);
      await this.close();
      if (current.isFile()) logger.info(`${path} was rotated; reading the new file from its start`);
    }

    // Gone between the stat and the open counts as not there yet, not as an error; replaced by
    // something else in between is found by the opened descriptor's own stat.
    if (this.firstLook && this.waitedFrom === undefined && current?.isFile() === true) {
      this.waitedFrom = { dev: current.dev, ino: current.ino, size: Number(current.size) };
    }
    const opened =
      current === undefined
        ? undefined
        : current.isFile()
          ? await openRegularFile(path)
          : nonRegularKind(current);
    if (opened === undefined) {
      this.firstLook = false;
      this.report("missing", "info", `waiting for ${path} to appear`);
      return;
    }
    if (typeof opened === "string") {
      // A FIFO would block a read until a writer comes, a device may never end: neither is a log.
      this.firstLook = false;
      this.report(
        `skipped ${opened}`,
        "warn",
        `${path} is a ${opened}, not a regular file; not reading it (checking again every poll)`,
      );
      return;
    }
    // Only a file there at start() can hold lines from before it; one appearing later is all new.
    // The handle's size, not the stat's: the path may have been replaced in between.
    if (this.firstLook && this.options.fromStart !== true) {
      try {
        const from = this.waitedFrom;
        // The file that was there when following began: from where it ended then (the open may
        // have failed until now). Another file took the name meanwhile: it is all new.
        if (from === undefined || (from.dev === opened.dev && from.ino === opened.ino)) {
          await skipTo(opened, from?.size);
        }
      } catch (error) {
        // Not taken half set up: the next poll opens it again and still skips what it holds.
        await opened.handle.close();
        throw error;
      }
    }
    this.file = opened;
    this.firstLook = false;
    this.report("following", "info", `following ${path}`);
    await this.readNew(opened);
  }

  /** Reads from the file's offset to its end, handing on complete lines. */
  private async readNew(file: OpenFile): Promise<void> {
    const buffer = this.buffer;
    for (;;) {
      if (this.stopped) return;
      // Positioned reads: the offset is ours, whatever else moves the file's own position.
      const { bytesRead } = await file.handle.read(buffer, 0, buffer.length, file.offset);
      if (bytesRead === 0) return;
      const bytes = buffer.subarray(0, bytesRead);
      remember(file, bytes);
      file.offset += bytesRead;
      this.take(file.decoder.write(bytes));
    }
  }

  /** Splits decoded text into lines; keeps the unfinished last one, up to the cap. */
  private take(text: string): void {
    let start = 0;
    for (let newline = text.indexOf("\n"); newline >= 0; newline = text.indexOf("\n", start)) {
      this.append(text.slice(start, newline));
      this.endLine();
      start = newline + 1;
    }
    this.append(text.slice(start));
  }

  /** Adds text to the current line; beyond the cap it is dropped, not held. */
  private append(text: string): void {
    if (this.overlong || text === "") return;
    const room = this.maxLineChars + 1 - this.partial.length;
    this.partial += text.length > room ? text.slice(0, room) : text;
    this.overlong = this.partial.length > this.maxLineChars;
  }

  private endLine(): void {
    const line = this.partial;
    this.partial = "";
    this.overlong = false;
    this.emit(line);
  }

  /** Hands on the unfinished line as it is, with any incomplete character, e.g. at rotation. */
  private flushPartial(file: OpenFile): void {
    this.append(file.decoder.end());
    if (this.partial !== "") this.endLine();
    this.overlong = false;
  }

  private emit(line: string): void {
    try {
      this.options.onLine(line);
    } catch (error) {
      // The consumer's failure must not stop the following or lose the lines after this one.
      this.options.logger.error(`handling a line of ${this.options.path} failed: ${describe(error)}`);
    }
  }

  private async close(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    try {
      await file?.handle.close();
    } catch {
      // Closing a file we only read cannot lose data; nothing to do if it fails.
    }
  }

  /** Logs the message only when the state changes. */
  private report(state: FollowState, level: "info" | "warn", message: string): void {
    if (this.state === state) return;
    this.state = state;
    this.options.logger[level](message);
  }
}

/**
 * What kind of file the stats describe when it is not a regular file (`"FIFO"`, `"directory"`,
 * ...), or undefined for a regular file. Only regular files can be followed.
 */
export function nonRegularKind(stats: StatsBase<unknown>): string | undefined {
  if (stats.isFile()) return undefined;
  if (stats.isFIFO()) return "FIFO";
  if (stats.isDirectory()) return "directory";
  if (stats.isCharacterDevice()) return "character device";
  if (stats.isBlockDevice()) return "block device";
  if (stats.isSocket()) return "socket";
  return "special file";
}

/** The file's stats (following symbolic links), or undefined when the path names nothing. */
async function statOrMissing(path: string): Promise<BigIntStats | undefined> {
  try {
    // bigint: inode numbers above 2^53 exist (XFS, NFS) and must compare exactly.
    return await stat(path, { bigint: true });
  } catch (error) {
    if (isCode(error, "ENOENT")) return undefined;
    throw error;
  }
}

/**
 * Opens the path for reading if it is a regular file, checked on the opened descriptor itself;
 * gives its kind when it is something else (closed again unread), undefined when it is gone.
 */
async function openRegularFile(path: string): Promise<OpenFile | string | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, OPEN_FLAGS);
  } catch (error) {
    if (isCode(error, "ENOENT")) return undefined;
    throw error;
  }
  try {
    const stats = await handle.stat({ bigint: true });
    const kind = nonRegularKind(stats);
    if (kind !== undefined) {
      await handle.close();
      return kind;
    }
    return {
      handle,
      dev: stats.dev,
      ino: stats.ino,
      offset: 0,
      decoder: new StringDecoder("utf8"),
      head: Buffer.alloc(0),
      tail: Buffer.alloc(0),
      mtimeNs: stats.mtimeNs,
    };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * Moves a just-opened file's offset to `offset` (default its end; its start when it is shorter,
 * having been truncated since), remembering the bytes that detect truncation.
 */
async function skipTo(file: OpenFile, offset?: number): Promise<void> {
  const { size, mtimeNs } = await file.handle.stat({ bigint: true });
  const end = offset === undefined ? Number(size) : offset <= Number(size) ? offset : 0;
  file.head = await readAt(file.handle, 0, Math.min(HEAD_BYTES, end));
  file.tail = await readAt(file.handle, end - Math.min(TAIL_BYTES, end), Math.min(TAIL_BYTES, end));
  file.offset = end;
  file.mtimeNs = mtimeNs;
}

/** Keeps the bytes just read (at the file's offset) in its head and tail fingerprints. */
function remember(file: OpenFile, bytes: Buffer): void {
  if (file.offset < HEAD_BYTES) {
    file.head = Buffer.concat([file.head, bytes.subarray(0, HEAD_BYTES - file.offset)]);
  }
  file.tail =
    bytes.length >= TAIL_BYTES
      ? Buffer.from(bytes.subarray(bytes.length - TAIL_BYTES))
      : Buffer.concat([file.tail, bytes]).subarray(-TAIL_BYTES);
}

/** Sets the file up to be read again from its start. */
function restart(file: OpenFile): void {
  file.offset = 0;
  file.decoder = new StringDecoder("utf8");
  file.head = Buffer.alloc(0);
  file.tail = Buffer.alloc(0);
}

/**
 * Whether the open file was truncated since it was read: it is shorter than the offset, or the
 * bytes at its start or just before the offset are no longer those that were read there.
 */
async function wasTruncated(file: OpenFile, current: BigIntStats): Promise<boolean> {
  const size = Number(current.size);
  if (size < file.offset) return true;
  // Nothing new to read and not written since: nothing to check. The time alone cannot be
  // trusted when the file grew: it ticks coarsely (a few ms), and a truncation and regrowth
  // within the tick of the last look would keep it.
  if (size === file.offset && current.mtimeNs === file.mtimeNs) return false;
  file.mtimeNs = current.mtimeNs;
  const head = await readAt(file.handle, 0, file.head.length);
  if (!head.equals(file.head)) return true;
  // Within the head, the tail was compared with it.
  if (file.offset <= HEAD_BYTES) return false;
  const tail = await readAt(file.handle, file.offset - file.tail.length, file.tail.length);
  return !tail.equals(file.tail);
}

/** Up to `length` bytes at `position`; fewer when the file ends first. */
async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const bytes = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(bytes, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return bytes.subarray(0, filled);
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
