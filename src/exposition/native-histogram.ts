/**
 * The exponential buckets of one histogram series, added up from OpenTelemetry's delta points.
 * OpenTelemetry's scale is Prometheus' schema (bucket bounds are powers of 2^(2^-scale)), but an
 * OpenTelemetry bucket `i` holds (base^i, base^(i+1)] where Prometheus' bucket `i` holds
 * (base^(i-1), base^i]: Prometheus' index is ours plus one, which {@link nativeSpans} adds.
 */
export interface NativeHistogram {
  /** The resolution: each bucket's upper bound is 2^(2^-schema) times its lower one. */
  schema: number;
  /** Observations of exactly zero. */
  zeroCount: number;
  /** Counts of positive observations, the first at OpenTelemetry index `offset`. */
  positive: NativeBuckets;
  /** Counts of negative observations by their magnitude, the same way. */
  negative: NativeBuckets;
}

/** A run of bucket counts starting at an OpenTelemetry bucket index. */
export interface NativeBuckets {
  offset: number;
  counts: number[];
}

/** An OpenTelemetry exponential histogram point's value, the parts of it that are added up. */
export interface ExponentialPoint {
  scale: number;
  zeroCount: number;
  positive: { offset: number; bucketCounts: readonly number[] };
  negative: { offset: number; bucketCounts: readonly number[] };
}

/** The resolution bounds Prometheus accepts (schema -4 to 8). */
export const MIN_SCHEMA = -4;
export const MAX_SCHEMA = 8;

/** How {@link addExponential} bounds a series: the highest schema, and buckets per sign. */
export interface NativeLimits {
  schema: number;
  maxBuckets: number;
}

/**
 * Adds a delta point into a series' buckets (a new state when `into` is undefined). Both go to the
 * coarser of their schemas and `limits.schema`; then, while either sign's buckets span more than
 * `limits.maxBuckets`, the schema drops by one, merging neighbours pairwise, as Prometheus'
 * client libraries bound a histogram. Never below {@link MIN_SCHEMA}, which spans every double.
 */
export function addExponential(
  into: NativeHistogram | undefined,
  point: ExponentialPoint,
  limits: NativeLimits,
): NativeHistogram {
  const state: NativeHistogram = into ?? {
    schema: limits.schema,
    zeroCount: 0,
    positive: { offset: 0, counts: [] },
    negative: { offset: 0, counts: [] },
  };
  // A point of zeros only reports scale 0, which says nothing about its resolution.
  const empty = point.positive.bucketCounts.length === 0 && point.negative.bucketCounts.length === 0;
  let schema = Math.max(
    MIN_SCHEMA,
    Math.min(state.schema, empty ? state.schema : point.scale, limits.schema),
  );
  const positive = { offset: point.positive.offset, counts: point.positive.bucketCounts };
  const negative = { offset: point.negative.offset, counts: point.negative.bucketCounts };
  // The coarsest schema needed is found from the ends of the runs alone, before any count moves.
  const fits = (s: number): boolean =>
    span(state.positive, state.schema - s, positive, point.scale - s) <= limits.maxBuckets &&
    span(state.negative, state.schema - s, negative, point.scale - s) <= limits.maxBuckets;
  while (schema > MIN_SCHEMA && !fits(schema)) schema--;
  state.positive = merged(state.positive, state.schema - schema, positive, point.scale - schema);
  state.negative = merged(state.negative, state.schema - schema, negative, point.scale - schema);
  state.schema = schema;
  state.zeroCount += point.zeroCount;
  return state;
}

/** One Prometheus bucket span: `offset` from the end of the previous span (from 0 for the first). */
export interface NativeSpan {
  offset: number;
  length: number;
}

/**
 * Buckets as Prometheus' spans and deltas: the first delta is the first count, each later one the
 * difference to the count before. Runs of more than two empty buckets start a new span (a span
 * costs about what two deltas of zero do); leading and trailing empty buckets are left out.
 */
export function nativeSpans(buckets: NativeBuckets): { spans: NativeSpan[]; deltas: number[] } {
  const spans: NativeSpan[] = [];
  const deltas: number[] = [];
  const { counts } = buckets;
  let previousCount = 0;
  // Where the last span ended, as a Prometheus index (ours + 1).
  let end = 0;
  let i = 0;
  while (i < counts.length) {
    if ((counts[i] ?? 0) === 0) {
      i++;
      continue;
    }
    const start = i;
    let last = i;
    for (let j = i + 1; j < counts.length && j - last <= 3; j++) if ((counts[j] ?? 0) !== 0) last = j;
    for (let j = start; j <= last; j++) {
      const count = counts[j] ?? 0;
      deltas.push(count - previousCount);
      previousCount = count;
    }
    const index = buckets.offset + start + 1;
    spans.push({ offset: spans.length === 0 ? index : index - end, length: last - start + 1 });
    end = buckets.offset + last + 2;
    i = last + 1;
  }
  return { spans, deltas };
}

/** A run of counts at an OpenTelemetry index: ours, or a point's. */
interface Run {
  offset: number;
  counts: readonly number[];
}

/** The buckets of both runs, each at `shift` schemas finer than the result, added up. */
function merged(ours: Run, oursShift: number, theirs: Run, theirsShift: number): NativeBuckets {
  const range = bounds(ours, oursShift, theirs, theirsShift);
  if (range === undefined) return { offset: 0, counts: [] };
  const counts = new Array<number>(range.high - range.low + 1).fill(0);
  for (const [run, shift] of [
    [ours, oursShift],
    [theirs, theirsShift],
  ] as const) {
    for (let i = 0; i < run.counts.length; i++) {
      const count = run.counts[i] ?? 0;
      if (count === 0) continue;
      const at = coarser(run.offset + i, shift) - range.low;
      counts[at] = (counts[at] ?? 0) + count;
    }
  }
  return { offset: range.low, counts };
}

/** How many buckets the two runs, each `shift` schemas finer, span together once merged. */
function span(ours: Run, oursShift: number, theirs: Run, theirsShift: number): number {
  const range = bounds(ours, oursShift, theirs, theirsShift);
  return range === undefined ? 0 : range.high - range.low + 1;
}

/** The lowest and highest bucket index of two runs at a coarser schema; none when both are empty. */
function bounds(a: Run, aShift: number, b: Run, bShift: number): { low: number; high: number } | undefined {
  let low = Infinity;
  let high = -Infinity;
  for (const [run, shift] of [
    [a, aShift],
    [b, bShift],
  ] as const) {
    if (run.counts.length === 0) continue;
    low = Math.min(low, coarser(run.offset, shift));
    high = Math.max(high, coarser(run.offset + run.counts.length - 1, shift));
  }
  return low === Infinity ? undefined : { low, high };
}

/**
 * The bucket that holds bucket `index` at `shift` schemas coarser: a floor division by 2^shift
 * (bucket i holds (b^i, b^(i+1)], and 2^shift of them make one of the coarser schema).
 */
function coarser(index: number, shift: number): number {
  return shift <= 0 ? index : Math.floor(index / 2 ** shift);
}
