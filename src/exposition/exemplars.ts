/** One exemplar: its labels, the observed value, when (ms since the epoch). */
export interface Exemplar {
  labels: Readonly<Record<string, string>>;
  value: number;
  timestampMs: number;
}

/**
 * The most UTF-8 characters (code points) an exemplar's label names and values may hold together,
 * as OpenMetrics caps them; a longer label set is dropped, not cut (a cut id leads nowhere).
 */
export const MAX_EXEMPLAR_LABEL_CHARS = 128;

/** Whether an exemplar's label set is within {@link MAX_EXEMPLAR_LABEL_CHARS}. */
export function exemplarLabelsFit(labels: Readonly<Record<string, string>>): boolean {
  let units = 0;
  for (const name in labels) units += name.length + (labels[name] ?? "").length;
  // UTF-16 units are never fewer than code points: only a long set needs counting exactly.
  if (units <= MAX_EXEMPLAR_LABEL_CHARS) return true;
  let chars = 0;
  for (const name in labels) chars += codePoints(name) + codePoints(labels[name] ?? "");
  return chars <= MAX_EXEMPLAR_LABEL_CHARS;
}

function codePoints(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A low surrogate completes the pair its high surrogate already counted.
    if (c < 0xdc00 || c > 0xdfff || i === 0 || !isHighSurrogate(text.charCodeAt(i - 1))) count++;
  }
  return count;
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

/**
 * The classic bucket a value falls in, as the SDK's explicit-bucket histogram counts it: the
 * first whose upper bound it does not exceed, else the +Inf one (`boundaries.length`).
 */
export function bucketIndex(boundaries: readonly number[], value: number): number {
  let lo = 0;
  let hi = boundaries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (value <= (boundaries[mid] ?? Infinity)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
