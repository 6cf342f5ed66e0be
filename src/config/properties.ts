import { Pair, parseLines } from "dot-properties";

/** One key of a config.properties file, escapes and continuation lines already resolved. */
export interface PropertyEntry {
  key: string;
  value: string;
  /** 1-based line on which the key starts. */
  line: number;
}

/**
 * Reads Java-properties text into one entry per key, in file order. A key set twice keeps its last
 * value and line, as `java.util.Properties` does. Values are returned as written (trailing spaces kept).
 */
export function parseProperties(text: string): PropertyEntry[] {
  // A UTF-8 BOM would otherwise become part of the first key.
  const src = text.startsWith("\uFEFF") ? text.slice(1) : text;
  const lineOf = lineLocator(src);
  const byKey = new Map<string, PropertyEntry>();
  for (const node of parseLines(src, true)) {
    if (!(node instanceof Pair)) continue;
    const { key, value } = node;
    // Delete first so that a repeated key moves to its last position, keeping file order.
    byKey.delete(key);
    byKey.set(key, { key, value, line: lineOf(node.range[0]) });
  }
  return [...byKey.values()];
}

/** Maps a character offset to its 1-based line; `\n`, `\r\n` and a lone `\r` each end a line, as in Java. */
function lineLocator(src: string): (offset: number) => number {
  const starts = [0];
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === "\n" || (c === "\r" && src[i + 1] !== "\n")) starts.push(i + 1);
  }
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
}
