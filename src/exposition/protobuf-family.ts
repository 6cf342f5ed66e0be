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
 */
export function writeFamily(
  w: ProtobufWriter,
  spec: FamilySpec,
  histogram: boolean,
  series: Iterable<readonly [string, number | HistogramValue]>,
): void {
  w.beginDelimited();
  w.string(1, spec.name);
  w.string(2, `Torchserve prometheus ${spec.type} metric with unit: ${spec.unit}`);
  const type = histogram ? HISTOGRAM : spec.type === "counter" ? COUNTER : GAUGE;
  if (type !== COUNTER) w.uint(3, type);
  for (const [labels, value] of series) {
    w.begin(4);
    writeLabels(w, labels);
    if (typeof value !== "number") {
      writeHistogram(w, value);
    } else {
      w.begin(type === COUNTER ? 3 : 2);
      w.double(1, value);
      w.end();
    }
    w.end();
  }
  w.end();
}

function writeHistogram(w: ProtobufWriter, value: HistogramValue): void {
  w.begin(7);
  w.uint(1, value.count);
  w.double(2, value.sum);
  const { boundaries, counts } = value;
  let cumulative = 0;
  for (let i = 0; i < boundaries.length; i++) {
    cumulative += counts[i] ?? 0;
    w.begin(3);
    w.uint(1, cumulative);
    w.double(2, boundaries[i] ?? Infinity);
    w.end();
  }
  if (value.native !== undefined) writeNative(w, value.native);
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
 * undoing its escapes (backslash, double quote, newline).
 */
function writeLabels(w: ProtobufWriter, text: string): void {
  let at = 0;
  while (at < text.length) {
    const eq = text.indexOf('="', at);
    if (eq < 0) return;
    const name = text.slice(at, eq);
    let value = "";
    let i = eq + 2;
    let from = i;
    for (; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x22) break; // the closing quote: escaped ones are skipped below
      if (c === 0x5c) {
        value += text.slice(from, i);
        const next = text[i + 1];
        value += next === "n" ? "\n" : (next ?? "");
        i++;
        from = i + 1;
      }
    }
    value += text.slice(from, i);
    w.begin(1);
    w.string(1, name);
    w.string(2, value);
    w.end();
    at = i + 2; // past the quote and the comma
  }
}
