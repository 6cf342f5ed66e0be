import type { Readable } from "node:stream";

/** What {@link readCappedLines} reports. */
export interface CappedLineHandlers {
  /** A whole line, UTF-8 decoded, without its `\n` (nor a `\r` before it). */
  line(text: string): void;
  /** A line passed `maxBytes`: its first `maxBytes` bytes; the rest, up to its `\n`, is dropped unread. */
  cut(head: string): void;
}

const NEWLINE = 0x0a;

/**
 * Splits a byte stream into lines, holding at most `maxBytes` of a line at any time, so that a
 * peer printing without newlines costs bounded memory (readline keeps the whole line, and throws
 * once it passes V8's longest string). A last line without a newline is reported at the end.
 */
export function readCappedLines(stream: Readable, maxBytes: number, on: CappedLineHandlers): void {
  let parts: Buffer[] = [];
  let size = 0;
  let dropping = false;

  const take = (piece: Buffer): void => {
    if (dropping) return;
    if (size + piece.length <= maxBytes) {
      if (piece.length > 0) parts.push(piece);
      size += piece.length;
      return;
    }
    parts.push(piece.subarray(0, maxBytes - size));
    const head = Buffer.concat(parts).toString("utf8");
    parts = [];
    size = 0;
    dropping = true;
    on.cut(head);
  };
  const endLine = (): void => {
    if (dropping) {
      dropping = false;
      return;
    }
    const bytes = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
    parts = [];
    size = 0;
    const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length;
    on.line(bytes.toString("utf8", 0, end));
  };

  stream.on("data", (chunk: Buffer) => {
    let start = 0;
    for (let at = chunk.indexOf(NEWLINE); at >= 0; at = chunk.indexOf(NEWLINE, start)) {
      take(chunk.subarray(start, at));
      endLine();
      start = at + 1;
    }
    if (start < chunk.length) take(chunk.subarray(start));
  });
  stream.on("end", () => {
    if (size > 0) endLine();
  });
}
