import { constants, crc32, deflateRawSync } from "node:zlib";
import { crc32Append, crc32Shift } from "./crc32-combine.js";

/**
 * Compression level of each segment. The exposition is so repetitive that level 1 sends about
 * the bytes level 6 does (7.5% of the text for 10k series either way) in about half the time.
 */
const LEVEL = 1;

/**
 * Bytes of text a segment holds at least (but the last): runs of small chunks, such as the HELP
 * and TYPE lines of families with few series, share one, which compresses them together. 32 KiB
 * is deflate's window.
 */
const SEGMENT_BYTES = 32 * 1024;

/** A gzip header: deflate, no name, no time, unknown OS (RFC 1952 §2.3). */
const HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
/** An empty final deflate block (fixed Huffman codes, end of block): ends the deflate stream. */
const LAST_BLOCK = Buffer.from([0x03, 0x00]);

/** A run of chunks, by identity, and their deflate segment. */
interface Segment {
  readonly chunks: readonly Uint8Array[];
  /** Deflate blocks, none of them final, ending on a byte boundary (a sync flush). */
  readonly deflate: Buffer;
  readonly crc: number;
  /** {@link crc32Shift} of the text's length. */
  readonly shift: number;
  readonly length: number;
}

/**
 * Compresses an exposition's chunks into one gzip member whose deflate stream is made of
 * segments compressed each on its own: every segment ends with a sync flush and refers to no
 * text before it, so segments written back to back are a valid deflate stream (as pigz joins
 * them), and every gzip reader decodes the body, curl and browsers included. The series store
 * hands over the same chunk objects while a family is unchanged, so a segment is kept, by its
 * first chunk, for as long as that chunk lives, and reused while the same chunks follow: a
 * scrape compresses only runs whose text changed, and the trailer's CRC is combined from the
 * segments' own. Compression is synchronous, one run of about 32 KiB to 96 KiB at a time, so
 * there is no zlib stream that a client hanging up could leave open.
 */
export class GzipBody {
  private readonly segments = new WeakMap<Uint8Array, Segment>();

  /** The gzip body of the chunks' text, in pieces to be written in turn. */
  compress(chunks: readonly Uint8Array[]): Buffer[] {
    const out: Buffer[] = [HEADER];
    let crc = 0;
    let length = 0;
    let at = 0;
    for (;;) {
      while (at < chunks.length && chunks[at]?.length === 0) at++;
      const first = chunks[at];
      if (first === undefined) break;
      let segment = this.segments.get(first);
      if (segment === undefined || !startsAt(segment.chunks, chunks, at)) {
        segment = compressRun(chunks, at);
        this.segments.set(first, segment);
      }
      out.push(segment.deflate);
      crc = crc32Append(crc, segment.shift, segment.crc);
      length += segment.length;
      at += segment.chunks.length;
    }
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(crc, 0);
    // ISIZE is the length modulo 2^32.
    trailer.writeUInt32LE(length % 2 ** 32, 4);
    out.push(LAST_BLOCK, trailer);
    return out;
  }
}

/** Whether `run` is the same chunk objects as `chunks` from `at` on. */
function startsAt(run: readonly Uint8Array[], chunks: readonly Uint8Array[], at: number): boolean {
  if (at + run.length > chunks.length) return false;
  for (let i = 0; i < run.length; i++) if (run[i] !== chunks[at + i]) return false;
  return true;
}

/** Compresses the chunks from `at` on until they hold {@link SEGMENT_BYTES}, or the end. */
function compressRun(chunks: readonly Uint8Array[], at: number): Segment {
  let end = at;
  let length = 0;
  while (end < chunks.length && length < SEGMENT_BYTES) length += chunks[end++]?.length ?? 0;
  const run = chunks.slice(at, end);
  const text = run.length === 1 && run[0] !== undefined ? run[0] : Buffer.concat(run, length);
  return {
    chunks: run,
    // A sync flush instead of finishing: no final block, and the segment ends on a byte boundary.
    deflate: deflateRawSync(text, { level: LEVEL, finishFlush: constants.Z_SYNC_FLUSH }),
    crc: crc32(text),
    shift: crc32Shift(length),
    length,
  };
}
