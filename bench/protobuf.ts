import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import protobufjs from "protobufjs";
import { writeFamily } from "../src/exposition/protobuf-family.js";
import { ProtobufWriter } from "../src/exposition/protobuf-writer.js";
import { labelPairs, type FamilySpec } from "../src/exposition/torchserve-text.js";
import { createMemoryLogger } from "../src/log.js";
import { startMetricsService, type MetricsService } from "../src/service.js";
import { PROTOBUF_CONTENT_TYPE } from "../src/server/accept-format.js";
import { forceGc } from "./lib/gc.js";
import { KeepAliveClient } from "./lib/http-client.js";
import { bytes, count, fmt, times, type Check, type Scenario } from "./lib/report.js";
import { median, quantile, ratio, rotated } from "./lib/stats.js";

const SERIES = 10_000;
/** What Prometheus sends with native histograms on: protobuf first. */
const PROTOBUF_ACCEPT =
  "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

/** The four ways one service is scraped, in turn. */
const KINDS = {
  text: {},
  "text gzip": { "Accept-Encoding": "gzip" },
  protobuf: { Accept: PROTOBUF_ACCEPT },
  "protobuf gzip": { Accept: PROTOBUF_ACCEPT, "Accept-Encoding": "gzip" },
} as const;
type Kind = keyof typeof KINDS;

interface Measured {
  ms: number;
  p90: number;
  bytes: number;
}

/**
 * The protobuf exposition's cost (issue 20): `GET /metrics` of 10k series in delimited protobuf
 * against the text of the same series from the same service, gzip and not, taken in turn; and
 * our MetricFamily encoder against protobufjs encoding the same family.
 */
export const protobuf: Scenario = async ({ quick, log }) => {
  const rounds = quick ? 6 : 40;
  log("protobuf: encoder against protobufjs");
  const enc = encoders(rounds);
  log("protobuf: 10k gauge series, text against protobuf");
  const scrape = await gaugeScrapes(rounds);
  const of = (kind: Kind): Measured => scrape.get(kind) ?? { ms: NaN, p90: NaN, bytes: NaN };
  const vsText = (kind: Kind): number =>
    ratio(of(kind).ms, of(kind.endsWith("gzip") ? "text gzip" : "text").ms);

  log("protobuf: histogram series, native buckets against classic only");
  // Quick: fewer histogram series, their text scrape alone is 15 MiB at 10k.
  const histogramSeries = quick ? 1_000 : SERIES;
  const native = await nativeScrapes(histogramSeries, quick ? 4 : 20);
  const nat = (key: string): Measured => native.get(key) ?? { ms: NaN, p90: NaN, bytes: NaN };

  const checks: Check[] = [
    {
      target: "protobuf scrape 10k series (changed) ≤ 1.0× text",
      measured: times(vsText("protobuf")),
      pass: vsText("protobuf") <= 1.0,
    },
    {
      target: "protobuf scrape 10k series (changed) with gzip ≤ 1.0× text with gzip",
      measured: times(vsText("protobuf gzip")),
      pass: vsText("protobuf gzip") <= 1.0,
    },
  ];
  return {
    title: "Protobuf exposition: 10k series against the text",
    notes: [
      `One service with ${SERIES.toLocaleString("en-US")} \`PredictionTime\` gauge series (\`histogram_gauges\` ` +
        "empty: no per-model histograms), scraped over one keep-alive connection four ways in turn, the " +
        `first of each round rotating, ${rounds} rounds after 2 warm-up rounds. Before every scrape each series ` +
        "gets a value, the service collects (outside the timed request), and each series gets another, so " +
        "every scrape collects 10k changed series and renders them: the cost of a scrape where everything " +
        "changed (with nothing changed both formats send cached bytes). A forced GC before each scrape.",
      "The encoder table: one gauge family of 10k series from the store's label texts, our " +
        "`src/exposition/protobuf-writer.ts` + `protobuf-family.ts` against protobufjs 7 building the message " +
        `objects and \`encodeDelimited\` (the library we would otherwise use), in turn, median of ${rounds}.`,
    ],
    tables: [
      {
        header: [
          "GET /metrics, 10k series changed",
          "median ms",
          "p90 ms",
          "bytes",
          "vs text (same encoding)",
        ],
        rows: (Object.keys(KINDS) as Kind[]).map((kind) => [
          kind,
          fmt(of(kind).ms),
          fmt(of(kind).p90),
          bytes(of(kind).bytes),
          times(vsText(kind)),
        ]),
      },
      {
        caption:
          `${count(histogramSeries)} \`serve_prediction_time_seconds\` histogram series (classic buckets: ` +
          "`request_duration_buckets`, 14 bounds), in two services alike but for `native_histograms`: `serve_prediction_time_seconds` (native + classic) and " +
          "empty (classic only); two observations per series before each scrape, spread over 1 ms to 1 s, so " +
          "the native buckets (schema 3) fill over the rounds. What the native buckets cost a scrape, in turn:",
        header: [
          `GET /metrics, ${count(histogramSeries)} histogram series`,
          "classic only ms",
          "native + classic ms",
          "native / classic",
          "bytes: classic / native",
        ],
        rows: NATIVE_KINDS.map((kind) => [
          kind,
          fmt(nat(`classic ${kind}`).ms),
          fmt(nat(`native ${kind}`).ms),
          times(ratio(nat(`native ${kind}`).ms, nat(`classic ${kind}`).ms)),
          `${bytes(nat(`classic ${kind}`).bytes)} / ${bytes(nat(`native ${kind}`).bytes)}`,
        ]),
      },
      {
        header: ["encoder, 10k gauge series", "median ms", "vs ours", "same bytes as ours"],
        rows: [
          ["ours (protobuf-writer.ts)", fmt(enc.ours), "1.00×", "yes"],
          [
            "protobufjs 7 (create + encodeDelimited)",
            fmt(enc.protobufjs),
            times(ratio(enc.protobufjs, enc.ours)),
            enc.same ? "yes" : "NO",
          ],
        ],
      },
    ],
    checks,
  };
};

/** One gauge family of 10k series: ours and protobufjs, from the store's label texts. */
function encoders(rounds: number): { ours: number; protobufjs: number; same: boolean } {
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
  const schema = protobufjs.loadSync(
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
  const samples = { ours: [] as number[], protobufjs: [] as number[] };
  for (let round = -2; round < rounds; round++) {
    for (const kind of rotated(["ours", "protobufjs"] as const, round + 2)) {
      forceGc();
      const started = performance.now();
      if (kind === "ours") ours();
      else viaProtobufjs();
      if (round >= 0) samples[kind].push(performance.now() - started);
    }
  }
  return { ours: median(samples.ours), protobufjs: median(samples.protobufjs), same };
}

/** Scrapes of one service, its 10k PredictionTime series changed before each. */
async function gaugeScrapes(rounds: number): Promise<Map<Kind, Measured>> {
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
  const kinds = Object.keys(KINDS) as Kind[];
  const client = new KeepAliveClient();
  const samples = new Map<Kind, { ms: number[]; bytes: number }>(kinds.map((k) => [k, { ms: [], bytes: 0 }]));
  let tick = 0;
  try {
    for (let round = -2; round < rounds; round++) {
      for (const kind of rotated(kinds, round + 2)) {
        tick++;
        for (let i = 0; i < SERIES; i++)
          service.recordMetric("PredictionTime", tick + i, { ModelName: `m${i}`, Level: "Model" });
        await service.scrapeChunks(["nothing"]); // the deltas into the store outside the timed request
        for (let i = 0; i < SERIES; i++)
          service.recordMetric("PredictionTime", tick + i + 0.5, { ModelName: `m${i}`, Level: "Model" });
        forceGc();
        const got = await client.get(url, false, KINDS[kind]);
        checkAnswer(kind, got.status, got.contentType, got.encoding);
        const into = samples.get(kind);
        if (round < 0 || into === undefined) continue;
        into.ms.push(got.ms);
        into.bytes = got.bytes;
      }
    }
  } finally {
    client.close();
    await service.stop();
  }
  return new Map(
    [...samples].map(([k, s]) => [k, { ms: median(s.ms), p90: quantile(s.ms, 0.9), bytes: s.bytes }]),
  );
}

/** The scrapes of {@link nativeScrapes}, each of both services. */
const NATIVE_KINDS = ["protobuf", "protobuf gzip", "text"] as const;

/**
 * Scrapes of two services with `series` histogram series each, one with native buckets, in turn:
 * `classic <kind>` and `native <kind>`.
 */
async function nativeScrapes(series: number, rounds: number): Promise<Map<string, Measured>> {
  const start = (families: string[]): Promise<MetricsService> =>
    startMetricsService({
      logger: createMemoryLogger(),
      env: {},
      hostname: "bench",
      settings: {
        metricsAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
        numberOfGpu: 0,
        disableSystemMetrics: true,
        histogramGauges: ["PredictionTime"],
        nativeHistograms: families,
      },
    });
  const services = { classic: await start([]), native: await start(["serve_prediction_time_seconds"]) };
  const targets = (["classic", "native"] as const).flatMap((mode) =>
    NATIVE_KINDS.map((kind) => ({ mode, kind, key: `${mode} ${kind}` })),
  );
  const client = new KeepAliveClient();
  const samples = new Map<string, { ms: number[]; bytes: number }>(
    targets.map((t) => [t.key, { ms: [], bytes: 0 }]),
  );
  let tick = 0;
  // 1 ms to 1 s, differing by series and by round.
  const observe = (service: MetricsService): void => {
    tick++;
    for (let i = 0; i < series; i++)
      service.recordMetric("PredictionTime", 1 + ((i * 7 + tick * 131) % 1000), {
        ModelName: `m${i}`,
        Level: "Model",
      });
  };
  try {
    for (let round = -2; round < rounds; round++) {
      for (const target of rotated(targets, round + 2)) {
        const service = services[target.mode];
        observe(service);
        await service.scrapeChunks(["nothing"]); // as for the gauges: collected apart
        observe(service);
        forceGc();
        const got = await client.get(`${service.metricsUrl ?? ""}/metrics`, false, KINDS[target.kind]);
        checkAnswer(target.kind, got.status, got.contentType, got.encoding);
        const into = samples.get(target.key);
        if (round < 0 || into === undefined) continue;
        into.ms.push(got.ms);
        into.bytes = got.bytes;
      }
    }
  } finally {
    client.close();
    await services.classic.stop();
    await services.native.stop();
  }
  return new Map(
    [...samples].map(([k, s]) => [k, { ms: median(s.ms), p90: quantile(s.ms, 0.9), bytes: s.bytes }]),
  );
}

/** A scrape answered in the format and encoding it asked for, or the figures would compare nothing. */
function checkAnswer(
  kind: string,
  status: number,
  contentType: string | undefined,
  encoding: string | undefined,
): void {
  const wantProtobuf = kind.startsWith("protobuf");
  const isProtobuf = contentType === PROTOBUF_CONTENT_TYPE;
  const wantGzip = kind.endsWith("gzip");
  if (status !== 200 || wantProtobuf !== isProtobuf || wantGzip !== (encoding === "gzip")) {
    throw new Error(
      `${kind} scrape answered ${status}, ${contentType ?? "no content type"}, ${encoding ?? "identity"}`,
    );
  }
}
