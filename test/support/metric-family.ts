import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

/**
 * An independent decoder of the delimited protobuf exposition: protobufjs with
 * `prometheus-metrics.proto`, never our encoder read backwards.
 */
const SCHEMA = protobuf.loadSync(fileURLToPath(new URL("./prometheus-metrics.proto", import.meta.url)));
const METRIC_FAMILY = SCHEMA.lookupType("io.prometheus.client.MetricFamily");

/** A decoded MetricFamily as plain data (enums as names, 64-bit integers as numbers). */
export interface DecodedFamily {
  name: string;
  help: string;
  type: string;
  metric: DecodedMetric[];
}

/** A decoded Exemplar (an unset field reads as null). */
export interface DecodedExemplar {
  label: { name: string; value: string }[];
  value: number;
  timestamp: { seconds: number; nanos: number } | null;
}

/** A decoded Metric. */
export interface DecodedMetric {
  label: { name: string; value: string }[];
  gauge?: { value: number };
  counter?: { value: number; exemplar?: DecodedExemplar | null };
  histogram?: {
    sampleCount: number;
    sampleSum: number;
    bucket: { cumulativeCount: number; upperBound: number; exemplar?: DecodedExemplar | null }[];
    schema?: number;
    zeroThreshold?: number;
    zeroCount?: number;
    positiveSpan?: { offset: number; length: number }[];
    positiveDelta?: number[];
  };
}

/** Every MetricFamily of a delimited protobuf body, in order. */
export function decodeMetricFamilies(body: Uint8Array): DecodedFamily[] {
  const reader = protobuf.Reader.create(body);
  const out: DecodedFamily[] = [];
  while (reader.pos < reader.len) {
    const message = METRIC_FAMILY.decodeDelimited(reader);
    out.push(
      METRIC_FAMILY.toObject(message, {
        enums: String,
        longs: Number,
        defaults: true,
        arrays: true,
      }) as DecodedFamily,
    );
  }
  return out;
}
