/**
 * The protobuf exposition's cost: (1) our hand-written MetricFamily encoder against protobufjs
 * encoding the same family, and (2) GET /metrics of 10k series in protobuf against text, gzip and
 * not, values changed before every scrape, on one service, taken in turn. Prints markdown.
 * Results are in bench/RESULTS.md ("Protobuf exposition").
 * Run: node --import tsx bench/protobuf.ts [--quick]
 */
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import protobuf from "protobufjs";
import { writeFamily } from "../src/exposition/protobuf-family.js";
import { ProtobufWriter } from "../src/exposition/protobuf-writer.js";
import { labelPairs, type FamilySpec } from "../src/exposition/torchserve-text.js";
import { createMemoryLogger } from "../src/log.js";
import { startMetricsService } from "../src/service.js";
import { forceGc } from "./lib/gc.js";
import { KeepAliveClient } from "./lib/http-client.js";
import { median, ratio, rotated } from "./lib/stats.js";

const QUICK = process.argv.includes("--quick");
const SERIES = 10_000;
const ROUNDS = QUICK ? 8 : 40;
const PROTOBUF_ACCEPT =
  "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

/** (1) One gauge family of 10k series: ours and protobufjs, from the store's label texts. */
function encoders(): { ours: number; protobufjs: number; same: boolean } {
  const spec: FamilySpec = {
    name: "PredictionTime",
    type: "gauge",
    unit: "ms",
    labels: ["ModelName", "Level"],
  };
  const series = new Map<string, number>();
  for (let i = 0; i < SERIES; i++) {
    series.set(labelPairs(spec.labels, { ModelName: `m${i}`, Level: "Model", Hostname: "host" }), i / 7);
  }
  const schema = protobuf.loadSync(
    fileURLToPath(new URL("../test/support/prometheus-metrics.proto", import.meta.url)),
  );
  const family = schema.lookupType("io.prometheus.client.MetricFamily");
  const writer = new ProtobufWriter();
  const ours = (): Buffer => {
    writeFamily(writer, spec, false, series);
    return writer.take();
  };
  const viaProtobufjs = (): Uint8Array => {
    const metric = [];
    for (const [labels, value] of series) {
      // The same label text read back as ours does (no escapes here), then a message object.
      const label = labels
        .slice(0, -1)
        .split('",')
        .map((pair) => {
          const [name = "", text = ""] = pair.split('="');
          return { name, value: text.replace(/"$/, "") };
        });
      metric.push({ label, gauge: { value } });
    }
    const message = family.create({
      name: spec.name,
      help: `Torchserve prometheus ${spec.type} metric with unit: ${spec.unit}`,
      type: 1,
      metric,
    });
    return family.encodeDelimited(message).finish();
  };
  const same = Buffer.from(viaProtobufjs()).equals(ours());
  const times = { ours: [] as number[], protobufjs: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of rotated(["ours", "protobufjs"] as const, round)) {
      forceGc();
      const started = performance.now();
      if (kind === "ours") ours();
      else viaProtobufjs();
      times[kind].push(performance.now() - started);
    }
  }
  return { ours: median(times.ours), protobufjs: median(times.protobufjs), same };
}

/** (2) Scrapes of one service, 10k PredictionTime series changed before each. */
async function scrapes(): Promise<Record<string, { ms: number; bytes: number }>> {
  const service = await startMetricsService({
    logger: createMemoryLogger(),
    env: {},
    hostname: "bench",
    settings: {
      metricsAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      numberOfGpu: 0,
      disableSystemMetrics: true,
      // 10k gauge series and nothing else: no per-model histograms beside PredictionTime.
      histogramGauges: [],
    },
  });
  const url = `${service.metricsUrl ?? ""}/metrics`;
  const kinds = {
    text: {},
    "text gzip": { "Accept-Encoding": "gzip" },
    protobuf: { Accept: PROTOBUF_ACCEPT },
    "protobuf gzip": { Accept: PROTOBUF_ACCEPT, "Accept-Encoding": "gzip" },
  } as const;
  type Kind = keyof typeof kinds;
  const names = Object.keys(kinds) as Kind[];
  const client = new KeepAliveClient();
  const times: Record<string, number[]> = {};
  const sizes: Record<string, number> = {};
  let tick = 0;
  try {
    for (let round = -2; round < ROUNDS; round++) {
      for (const kind of rotated(names, round + 2)) {
        tick++;
        for (let i = 0; i < SERIES; i++)
          service.recordMetric("PredictionTime", tick + i, { ModelName: `m${i}`, Level: "Model" });
        await service.scrapeChunks(["nothing"]); // the deltas into the store outside the timed request
        for (let i = 0; i < SERIES; i++)
          service.recordMetric("PredictionTime", tick + i + 0.5, { ModelName: `m${i}`, Level: "Model" });
        forceGc();
        const got = await client.get(url, false, kinds[kind]);
        if (round < 0) continue;
        (times[kind] ??= []).push(got.ms);
        sizes[kind] = got.bytes;
      }
    }
  } finally {
    await service.stop();
  }
  return Object.fromEntries(names.map((k) => [k, { ms: median(times[k] ?? []), bytes: sizes[k] ?? 0 }]));
}

const enc = encoders();
const scrape = await scrapes();
const text = scrape.text?.ms ?? NaN;
const textGzip = scrape["text gzip"]?.ms ?? NaN;
console.log(`| encoder, 10k gauge series | ms (median of ${ROUNDS}) | vs ours |`);
console.log("| --- | --- | --- |");
console.log(`| ours (protobuf-writer.ts) | ${enc.ours.toFixed(2)} | 1.00× |`);
console.log(
  `| protobufjs 7 (create + encodeDelimited) | ${enc.protobufjs.toFixed(2)} | ${ratio(enc.protobufjs, enc.ours).toFixed(2)}× |`,
);
console.log(`\nsame bytes: ${enc.same}\n`);
console.log(
  `| GET /metrics, 10k series changed | ms (median of ${ROUNDS}) | bytes | vs text (same encoding) |`,
);
console.log("| --- | --- | --- | --- |");
for (const [kind, r] of Object.entries(scrape)) {
  const base = kind.endsWith("gzip") ? textGzip : text;
  console.log(`| ${kind} | ${r.ms.toFixed(2)} | ${r.bytes} | ${ratio(r.ms, base).toFixed(2)}× |`);
}
