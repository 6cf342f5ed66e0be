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
}

type FollowState = "none" | "following" | "missing" | "disappeared";

const READ_CHUNK_BYTES = 64 * 1024;
// A "line" growing past this without a newline is not a log line; it is handed on as it is
// rather than held in memory without bound.
const MAX_PARTIAL_CHARS = 1024 * 1024;

/**
 * Follows a file like `tail -F`: polls it, hands on each complete line in order, and survives
 * the file appearing late, disappearing, being rotated (renamed and recreated) or truncated.
 * Never throws into the caller; problems are logged once per change of state.
 */
export class FileFollower {
  private readonly options: FileFollowerOptions;
  private readonly pollMs: number;
  private file: OpenFile | undefined;
  // Text after the last newline, waiting for the rest of its line.
  private partial = "";
  private starting: Promise<void> | undefined;
  private polling: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  // Only the very first look honours fromStart=false; a file appearing later is new, read whole.
  private firstLook = true;
  // The last reported state of the path, and the last read error while one persists, so that
  // each is logged once when it changes, not every poll.
  private state: FollowState = "none";
  private failing: string | undefined;

  constructor(options: FileFollowerOptions) {
    const pollMs = options.pollMs ?? 500;
    if (!Number.isFinite(pollMs) || pollMs <= 0) {
      throw new RangeError(`pollMs must be a positive number of milliseconds, got ${String(options.pollMs)}`);
    }
    this.options = options;
    this.pollMs = pollMs;
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
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.polling = this.poll().then(() => this.schedule());
    }, this.pollMs);
    // Following a file is never a reason for the process to stay alive.
    this.timer.unref();
  }

  /** One look at the path: follows rotation and truncation, reads new bytes. Never rejects. */
  private async poll(): Promise<void> {
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
        if (Number(current.size) < file.offset) {
          // copytruncate: the same file starts over. What was read stays read.
          logger.info(`${path} was truncated; reading it again from its start`);
          this.flushPartial(file);
          file.offset = 0;
          file.decoder = new StringDecoder("utf8");
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
      logger.info(`${path} was rotated; reading the new file from its start`);
    }

    // Gone between the stat and the open counts as not there yet, not as an error.
    const opened = current === undefined ? undefined : await openFile(path);
    if (opened === undefined) {
      this.firstLook = false;
      this.report("missing", "info", `waiting for ${path} to appear`);
      return;
    }
    this.file = opened;
    // Only a file there at start() can hold lines from before it; one appearing later is all new.
    // The handle's size, not the stat's: the path may have been replaced in between.
    if (this.firstLook && this.options.fromStart !== true) opened.offset = opened.startSize;
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
      file.offset += bytesRead;
      this.take(file.decoder.write(buffer.subarray(0, bytesRead)));
    }
  }

  /** Splits decoded text into lines; keeps the unfinished last one. */
  private take(text: string): void {
    const pieces = (this.partial + text).split("\n");
    this.partial = pieces.pop() ?? "";
    for (const line of pieces) this.emit(line);
    if (this.partial.length > MAX_PARTIAL_CHARS) this.flushPartial(undefined);
  }

  /** Hands on the unfinished line as it is, with any incomplete character, e.g. at rotation. */
  private flushPartial(file: OpenFile | undefined): void {
    const rest = this.partial + (file?.decoder.end() ?? "");
    this.partial = "";
    if (rest !== "") this.emit(rest);
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

interface Identity {
  dev: bigint;
  ino: bigint;
  size: bigint;
}

/** The file's identity and size, or undefined when the path names nothing. */
async function statOrMissing(path: string): Promise<Identity | undefined> {
  try {
    // bigint: inode numbers above 2^53 exist (XFS, NFS) and must compare exactly.
    return await stat(path, { bigint: true });
  } catch (error) {
    if (isCode(error, "ENOENT")) return undefined;
    throw error;
  }
}

/** Opens the file for reading, or gives undefined when the path names nothing. */
async function openFile(path: string): Promise<(OpenFile & { startSize: number }) | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if (isCode(error, "ENOENT")) return undefined;
    throw error;
  }
  try {
    const { dev, ino, size } = await handle.stat({ bigint: true });
    return { handle, dev, ino, offset: 0, startSize: Number(size), decoder: new StringDecoder("utf8") };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
