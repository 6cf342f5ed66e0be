/**
 * Characters per chunk: small enough that no chunk comes near V8's string limit (~512 MiB) or
 * holds up a write for long, large enough that a scrape of 10k series is a handful of writes.
 */
export const CHUNK_CHARS = 64 * 1024;

/**
 * Text built piece by piece and kept as UTF-8 chunks of about {@link CHUNK_CHARS} characters, so
 * an exposition of any size never becomes one string, and each chunk is encoded once however
 * often it is written.
 */
export class TextChunks {
  private readonly chunks: Buffer[] = [];
  private pending = "";

  /** Appends text (whole lines, so chunks always end on a line). */
  add(text: string): void {
    this.pending += text;
    if (this.pending.length >= CHUNK_CHARS) this.cut();
  }

  /** The chunks, the text added since the last cut included; none when nothing was added. */
  finish(): Buffer[] {
    if (this.pending !== "") this.cut();
    return this.chunks;
  }

  private cut(): void {
    this.chunks.push(Buffer.from(this.pending));
    this.pending = "";
  }
}

/** The chunks' total length in bytes. */
export function byteLength(chunks: readonly Uint8Array[]): number {
  let total = 0;
  for (const chunk of chunks) total += chunk.length;
  return total;
}

/** The chunks as one string, for callers that want text (tests, small embedders). */
export function chunksToString(chunks: readonly Uint8Array[]): string {
  return Buffer.concat(chunks).toString("utf8");
}
