/** The q-quantile (0..1) of `values` by linear interpolation between order statistics; NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  const low = sorted[lo] ?? NaN;
  const high = sorted[hi] ?? NaN;
  return low + (high - low) * (at - lo);
}

/** The median of `values`; NaN when empty. */
export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/** `a / b`, or NaN when b is 0 or either is not finite, so a ratio never prints as Infinity. */
export function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN;
}

/** Every peer once per round, starting at a different peer each round, so drift hits them alike. */
export function rotated<T>(items: readonly T[], round: number): T[] {
  const k = items.length === 0 ? 0 : round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}
