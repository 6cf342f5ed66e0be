import type { Exemplar } from "./exemplars.js";
import type { ProtobufWriter } from "./protobuf-writer.js";
import type { FamilySpec, HistogramValue } from "./torchserve-text.js";
import { nativeSpans, type NativeBuckets, type NativeHistogram } from "./native-histogram.js";

/** `io.prometheus.client.MetricType` values. */
const COUNTER = 0;
const GAUGE = 1;
const HISTOGRAM = 4;

/**
 * The native zero bucket's width, client_golang's default (2^-128): above 0, because Prometheus
 * 2.42 takes a family's histograms as classic unless its first one has native buckets, a zero
 * count or a zero threshold; a histogram with no observations yet has only the threshold.
 */
export const NATIVE_ZERO_THRESHOLD = 2 ** -128;

/**
 * Writes one family as a length-delimited `io.prometheus.client.MetricFamily` (the exposition
 * Prometheus asks for first when native histograms are on): the name and HELP text TorchServe's
 * text has, the type, and one Metric per series, whose labels are read back from the series'
 * label text. Counters and gauges carry their value; histograms their count, sum and cumulative
 * classic buckets without the +Inf one, which Prometheus makes from the count (as client_golang
 * sends them), so the stored series are those of the text. `histogram` says what the data is.
 * `exemplars` (by label text) go on a counter (`Counter.exemplar`) and on a histogram's classic
 * buckets (`Bucket.exemplar`); one in the +Inf bucket brings that bucket along, as client_golang
 * sends it (its count is the histogram's, so the stored series stay the same).
 */
export function writeFamily(
  w: ProtobufWriter,
  spec: FamilySpec,
  histogram: boolean,
  series: Iterable<readonly [string, number | HistogramValue]>,
  exemplars?: ReadonlyMap<string, readonly (Exemplar | undefined)[]>,
): void {
  w.beginDelimited();
  w.string(1, spec.name);
  w.string(2, `Torchserve prometheus ${spec.type} metric with unit: ${spec.unit}`);
  const type = histogram ? HISTOGRAM : spec.type === "counter" ? COUNTER : GAUGE;
  if (type !== COUNTER) w.uint(3, type);
  for (const [labels, value] of series) {
    w.begin(4);
    writeLabels(w, labels);
    const kept = exemplars?.get(labels);
    if (typeof value !== "number") {
      writeHistogram(w, value, kept);
    } else {
      w.begin(type === COUNTER ? 3 : 2);
      w.double(1, value);
      const exemplar = type === COUNTER ? kept?.[0] : undefined;
      if (exemplar !== undefined) writeExemplar(w, 2, exemplar);
      w.end();
    }
    w.end();
  }
  w.end();
}

function writeHistogram(
  w: ProtobufWriter,
  value: HistogramValue,
  exemplars: readonly (Exemplar | undefined)[] | undefined,
): void {
  w.begin(7);
  w.uint(1, value.count);
  w.double(2, value.sum);
  const { boundaries, counts } = value;
  // Prometheus 2.42 keeps one exemplar per native histogram and scrape, the lowest bucket's that
  // has one, which would nearly always be a fast request's: a native histogram's buckets carry
  // only the newest exemplar, and the Histogram's own `exemplars` field, which later versions
  // read for native histograms (2.42 skips it), carries them all.
  const only = value.native === undefined ? undefined : newest(exemplars);
  const onBucket = (i: number): Exemplar | undefined =>
    only === undefined || only === i ? exemplars?.[i] : undefined;
  let cumulative = 0;
  for (let i = 0; i < boundaries.length; i++) {
    cumulative += counts[i] ?? 0;
    w.begin(3);
    w.uint(1, cumulative);
    w.double(2, boundaries[i] ?? Infinity);
    const exemplar = onBucket(i);
    if (exemplar !== undefined) writeExemplar(w, 3, exemplar);
    w.end();
  }
  const inf = onBucket(boundaries.length);
  if (inf !== undefined) {
    w.begin(3);
    w.uint(1, value.count);
    w.double(2, Infinity);
    writeExemplar(w, 3, inf);
    w.end();
  }
  if (value.native !== undefined) {
    writeNative(w, value.native);
    for (const exemplar of exemplars ?? []) if (exemplar !== undefined) writeExemplar(w, 16, exemplar);
  }
  w.end();
}

/** The slot of the newest exemplar; undefined when there is none. */
function newest(exemplars: readonly (Exemplar | undefined)[] | undefined): number | undefined {
  let at: number | undefined;
  let time = -Infinity;
  exemplars?.forEach((exemplar, i) => {
    if (exemplar !== undefined && exemplar.timestampMs >= time) {
      at = i;
      time = exemplar.timestampMs;
    }
  });
  return at;
}

function writeExemplar(w: ProtobufWriter, field: number, exemplar: Exemplar): void {
  w.begin(field);
  const { labels } = exemplar;
  for (const name in labels) {
    w.begin(1);
    w.string(1, name);
    w.string(2, labels[name] ?? "");
    w.end();
  }
  w.double(2, exemplar.value);
  // google.protobuf.Timestamp: whole seconds and the nanoseconds past them.
  const ms = exemplar.timestampMs;
  const seconds = Math.floor(ms / 1000);
  w.begin(3);
  w.uint(1, seconds);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  if (nanos !== 0) w.uint(2, nanos);
  w.end();
  w.end();
}

/** The native buckets of a Histogram message: schema, zero bucket, then spans and deltas per sign. */
function writeNative(w: ProtobufWriter, native: NativeHistogram): void {
  w.sint(5, native.schema);
  w.double(6, NATIVE_ZERO_THRESHOLD);
  if (native.zeroCount > 0) w.uint(7, native.zeroCount);
  writeBuckets(w, native.negative, 9, 10);
  writeBuckets(w, native.positive, 12, 13);
}

function writeBuckets(
  w: ProtobufWriter,
  buckets: NativeBuckets,
  spanField: number,
  deltaField: number,
): void {
  const { spans, deltas } = nativeSpans(buckets);
  for (const span of spans) {
    w.begin(spanField);
    w.sint(1, span.offset);
    w.uint(2, span.length);
    w.end();
  }
  w.packedSint(deltaField, deltas);
}

/**
 * Writes the LabelPairs of a label text as {@link labelPairs} makes it (`a="1",b="x\"y",`),
 * undoing its escapes (backslash, double quote, newline). Names and values without escapes are
 * written straight from the text, no strings made: a scrape pays this for every series.
 */
function writeLabels(w: ProtobufWriter, text: string): void {
  let at = 0;
  while (at < text.length) {
    w.begin(1);
    // Label names are ASCII (made so where they are not declared), values mostly.
    let eq = w.asciiUntil(1, text, at, 0x3d, 0x22); // `=`; a quote means no name
    if (eq < 0) {
      // A long or non-ASCII name. (Text not of labelPairs, never in the store, ends as a name.)
      eq = text.indexOf('="', at);
      if (eq < 0) eq = text.length;
      w.string(1, text.slice(at, eq));
    }
    let close = w.asciiUntil(2, text, eq + 2, 0x22, 0x5c); // the closing quote; a backslash escapes
    if (close < 0) {
      close = closingQuote(text, eq + 2);
      w.string(2, unescape(text, eq + 2, close));
    }
    w.end();
    at = close + 2; // past the quote and the comma
  }
}

/** Where the quote that closes a label value starting at `from` is; escaped quotes skipped. */
function closingQuote(text: string, from: number): number {
  let i = from;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) break;
    if (c === 0x5c) i++;
  }
  return i;
}

/** The value of an escaped label value text, `text.slice(from, to)`. */
function unescape(text: string, from: number, to: number): string {
  let value = "";
  let start = from;
  for (let i = from; i < to; i++) {
    if (text.charCodeAt(i) !== 0x5c) continue;
    value += text.slice(start, i);
    value += text[i + 1] === "n" ? "\n" : (text[i + 1] ?? "");
    i++;
    start = i + 1;
  }
  return value + text.slice(start, to);
}
