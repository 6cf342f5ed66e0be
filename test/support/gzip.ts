import { inflateRawSync } from "node:zlib";

/**
 * The number of gzip members a body is made of (RFC 1952: members may follow one another), each
 * inflated on its own; throws on anything but plain members (no optional header fields) back to back.
 */
export function countGzipMembers(body: Buffer): number {
  let at = 0;
  let members = 0;
  while (at < body.length) {
    if (body[at] !== 0x1f || body[at + 1] !== 0x8b || body[at + 2] !== 8 || body[at + 3] !== 0) {
      throw new Error(`no plain gzip member header at byte ${at}`);
    }
    const { engine } = inflateRawSync(body.subarray(at + 10), { info: true }) as unknown as {
      engine: { bytesWritten: number };
    };
    // Header (10 bytes), the deflate stream, CRC32 and ISIZE (8 bytes).
    at += 10 + engine.bytesWritten + 8;
    members++;
  }
  return members;
}
