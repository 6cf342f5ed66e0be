import { expect } from "chai";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";
import { writeFamily } from "../../src/exposition/protobuf-family.js";
import { ProtobufWriter } from "../../src/exposition/protobuf-writer.js";
import { labelPairs, type FamilySpec, type HistogramValue } from "../../src/exposition/torchserve-text.js";

// An independent encoder of the same messages: protobufjs with client_model's metrics.proto.
const SCHEMA = protobuf.loadSync(
  fileURLToPath(new URL("../support/prometheus-metrics.proto", import.meta.url)),
);
const METRIC_FAMILY = SCHEMA.lookupType("io.prometheus.client.MetricFamily");

/** Label values that take each path of the encoder: plain, escaped, non-ASCII, long, empty. */
const VALUES = [
  "resnet-18",
  "",
  'say "hi"\\now',
  "line\nbreak",
  "modèle",
  "模型",
  'emoji 🦀 and \\ " \n',
  "x".repeat(127),
  "y".repeat(128),
  "z".repeat(300),
  "é".repeat(70),
];

const GAUGE: FamilySpec = {
  name: "PredictionTime",
  type: "gauge",
  unit: "ms",
  labels: ["ModelName", "Level"],
};

function labelsOf(value: string): Record<string, string> {
  return { ModelName: value, Level: "Model" };
}

/** protobufjs' bytes; `type` undefined leaves the field out (COUNTER, its default, as ours does). */
function protobufjsBytes(
  spec: FamilySpec,
  type: number | undefined,
  metric: Record<string, unknown>[],
): Buffer {
  const message = METRIC_FAMILY.create({
    name: spec.name,
    help: `Torchserve prometheus ${spec.type} metric with unit: ${spec.unit}`,
    ...(type === undefined ? {} : { type }),
    metric,
  });
  return Buffer.from(METRIC_FAMILY.encodeDelimited(message).finish());
}

function ours(spec: FamilySpec, histogram: boolean, series: Map<string, number | HistogramValue>): Buffer {
  const writer = new ProtobufWriter();
  writeFamily(writer, spec, histogram, series);
  return writer.take();
}

describe("writeFamily", () => {
  it("writes a gauge family byte for byte as protobufjs encodes it, whatever its label values hold", () => {
    const series = new Map<string, number>();
    const metric: Record<string, unknown>[] = [];
    VALUES.forEach((value, i) => {
      series.set(labelPairs(GAUGE.labels, labelsOf(value)), i * 1.5 - 3);
      metric.push({
        label: [
          { name: "ModelName", value },
          { name: "Level", value: "Model" },
        ],
        gauge: { value: i * 1.5 - 3 },
      });
    });
    expect(ours(GAUGE, false, series).equals(protobufjsBytes(GAUGE, 1, metric))).to.equal(true);
  });

  it("writes a counter family with a label-less series as protobufjs does (type left at its default)", () => {
    const spec: FamilySpec = { name: "Requests2XX", type: "counter", unit: "Count", labels: ["Level"] };
    const series = new Map<string, number>([
      ["", 7],
      [labelPairs(spec.labels, { Level: "Host" }), 2 ** 53],
    ]);
    const metric = [
      { counter: { value: 7 } },
      { label: [{ name: "Level", value: "Host" }], counter: { value: 2 ** 53 } },
    ];
    expect(ours(spec, false, series).equals(protobufjsBytes(spec, undefined, metric))).to.equal(true);
  });

  it("writes label names that are long or not ASCII as protobufjs does", () => {
    const long = `label_${"n".repeat(130)}`;
    const spec: FamilySpec = {
      name: "QueueTime",
      type: "gauge",
      unit: "ms",
      labels: [long, "Größe", "Level"],
    };
    const series = new Map([[labelPairs(spec.labels, { [long]: "a", Größe: "b", Level: "Host" }), 1]]);
    const label = [
      { name: long, value: "a" },
      { name: "Größe", value: "b" },
      { name: "Level", value: "Host" },
    ];
    expect(
      ours(spec, false, series).equals(protobufjsBytes(spec, 1, [{ label, gauge: { value: 1 } }])),
    ).to.equal(true);
  });

  it("writes histograms, whose messages pass 128 bytes, as protobufjs does", () => {
    const spec: FamilySpec = {
      name: "serve_request_duration_seconds",
      type: "histogram",
      unit: "s",
      labels: ["model_name"],
    };
    const boundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    const series = new Map<string, HistogramValue>();
    const metric: Record<string, unknown>[] = [];
    VALUES.forEach((value, i) => {
      const counts = boundaries.map((_, b) => (b * 37 + i) % 200).concat([i]);
      series.set(labelPairs(spec.labels, { model_name: value }), {
        boundaries,
        counts,
        sum: i * 0.25,
        count: counts.reduce((a, b) => a + b, 0),
      });
      let cumulative = 0;
      metric.push({
        label: [{ name: "model_name", value }],
        histogram: {
          sampleCount: counts.reduce((a, b) => a + b, 0),
          sampleSum: i * 0.25,
          bucket: boundaries.map((upperBound, b) => {
            cumulative += counts[b] ?? 0;
            return { cumulativeCount: cumulative, upperBound };
          }),
        },
      });
    });
    expect(ours(spec, true, series).equals(protobufjsBytes(spec, 4, metric))).to.equal(true);
  });
});
