/**
 * A protobuf wire-format writer for the few field kinds the MetricFamily exposition uses: varints
 * (uint64 from a safe integer, enums), sint (zigzag), doubles, strings and nested messages. A
 * nested message's length is written in front of it once it is complete: one byte is reserved,
 * and the rare message of 128 bytes or more is moved along to make room.
 */
export class ProtobufWriter {
  private buf = Buffer.allocUnsafe(64 * 1024);
  private at = 0;
  /** Where each open message's reserved length byte is. */
  private readonly open: number[] = [];

  /** Bytes written so far. */
  get length(): number {
    return this.at;
  }

  /** A varint field (wire type 0) from a non-negative safe integer. */
  uint(field: number, value: number): void {
    this.tag(field, 0);
    this.varint(value);
  }

  /** A zigzag varint field (sint32/sint64, wire type 0) from a safe integer. */
  sint(field: number, value: number): void {
    this.tag(field, 0);
    this.varint(value >= 0 ? value * 2 : -value * 2 - 1);
  }

  /** A packed repeated zigzag varint field (sint32/sint64) from safe integers; nothing if empty. */
  packedSint(field: number, values: readonly number[]): void {
    if (values.length === 0) return;
    this.begin(field);
    for (const value of values) this.varint(value >= 0 ? value * 2 : -value * 2 - 1);
    this.end();
  }

  /** A double field (wire type 1). */
  double(field: number, value: number): void {
    this.tag(field, 1);
    this.reserve(8);
    this.buf.writeDoubleLE(value, this.at);
    this.at += 8;
  }

  /** A string field (wire type 2), UTF-8. */
  string(field: number, value: string): void {
    this.tag(field, 2);
    const length = value.length;
    if (length < 0x80) {
      // Short ASCII, most of what we write: its characters are its bytes, copied one by one,
      // which costs far less than a call into Buffer's UTF-8 encoder.
      this.reserve(length + 1);
      const buf = this.buf;
      let at = this.at + 1;
      for (let i = 0; i < length; i++) {
        const c = value.charCodeAt(i);
        if (c >= 0x80) return this.utf8(value);
        buf[at++] = c;
      }
      buf[this.at] = length;
      this.at = at;
      return;
    }
    this.utf8(value);
  }

  /**
   * A string field of the characters of `text` from `from` up to the first `stop` character (a
   * UTF-16 code unit), copied as they are read, and where that character is. Returns -1, having
   * written nothing, where the run is not plain ASCII shorter than 128 (one length byte), holds a
   * `bail` character or has no `stop`: the caller then writes it with {@link string}.
   */
  asciiUntil(field: number, text: string, from: number, stop: number, bail: number): number {
    const start = this.at;
    this.tag(field, 2);
    const end = Math.min(text.length, from + 0x80);
    this.reserve(end - from + 1);
    const buf = this.buf;
    let at = this.at + 1;
    for (let i = from; i < end; i++) {
      const c = text.charCodeAt(i);
      if (c === stop) {
        buf[this.at] = i - from;
        this.at = at;
        return i;
      }
      if (c >= 0x80 || c === bail) break;
      buf[at++] = c;
    }
    this.at = start;
    return -1;
  }

  /** Starts a nested message field (wire type 2); {@link end} closes it. */
  begin(field: number): void {
    this.tag(field, 2);
    this.beginDelimited();
  }

  /** Starts a length-prefixed run with no tag (a delimited stream's next message). */
  beginDelimited(): void {
    this.reserve(1);
    this.open.push(this.at);
    this.at += 1;
  }

  /** Ends the innermost open message, writing its length in front of it. */
  end(): void {
    const start = this.open.pop();
    if (start === undefined) throw new Error("ProtobufWriter.end() without begin()");
    const length = this.at - start - 1;
    const size = varintSize(length);
    if (size > 1) {
      this.reserve(size - 1);
      this.buf.copyWithin(start + size, start + 1, this.at);
      this.at += size - 1;
    }
    writeVarint(this.buf, start, length);
  }

  /** The bytes written, copied out; the writer starts over, empty. */
  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.at));
    this.at = 0;
    return out;
  }

  /** A string's length and UTF-8 bytes, through Buffer's encoder. */
  private utf8(value: string): void {
    const bytes = Buffer.byteLength(value, "utf8");
    this.varint(bytes);
    this.reserve(bytes);
    this.at += this.buf.write(value, this.at, "utf8");
  }

  private tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  private varint(value: number): void {
    this.reserve(10);
    this.at = writeVarint(this.buf, this.at, value);
  }

  private reserve(bytes: number): void {
    if (this.at + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + bytes));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }
}

/** Writes a non-negative safe integer as a varint at `at`; where it ends. */
function writeVarint(buf: Buffer, at: number, value: number): number {
  let v = value;
  while (v >= 0x80) {
    buf[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[at++] = v;
  return at;
}

/** Bytes the varint of a non-negative safe integer takes. */
function varintSize(value: number): number {
  let size = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) size++;
  return size;
}
