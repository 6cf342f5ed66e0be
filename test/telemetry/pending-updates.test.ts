import { AggregationTemporality, MeterProvider } from "@opentelemetry/sdk-metrics";
import { expect } from "chai";
import fc from "fast-check";
import { loadDefaultCatalog } from "../../src/catalog/load.js";
import { metricsByName, PullReader } from "../../src/exposition/pull-reader.js";
import { renderTorchServeText } from "../../src/exposition/series-store.js";
import { createMemoryLogger } from "../../src/log.js";
import { createTelemetry } from "../../src/telemetry/pipeline.js";
import type { MetricDefinition } from "../../src/catalog/types.js";
import { formatJavaDouble } from "../../src/exposition/java-double.js";
import { Scraper } from "../../src/exposition/scrape.js";

/** The service's pipeline with a second, cumulative reader standing in for an OTLP push reader. */
function setup() {
  const push = new PullReader(AggregationTemporality.CUMULATIVE);
  const t = createTelemetry({
    metrics: loadDefaultCatalog().metrics,
    format: "torchserve",
    hostname: "h",
    logger: createMemoryLogger(),
    readers: [push],
  });
  const text = async (reader: PullReader, names: string[]) =>
    renderTorchServeText(t.families, metricsByName((await reader.collect()).resourceMetrics), new Set(names));
  return { t, push, text };
}

const sample = (text: string, prefix: string): string | undefined =>
  text.split("\n").find((l) => l.startsWith(prefix));

describe("PendingUpdates", () => {
  it("hands every waiting update to whichever reader collects first, and the rest to the next", async () => {
    const { t, push, text } = setup();
    for (let i = 0; i < 5; i++) t.recorder.recordInference({ model: "m", status: 200, latencyMs: 2 });
    // The push reader collects first: the updates must reach it, and the pull reader's next collection too.
    expect(
      sample(await text(push, ["ts_inference_requests_total"]), "ts_inference_requests_total{"),
    ).to.equal('ts_inference_requests_total{model_name="m",model_version="default",hostname="h",} 5.0');
    t.recorder.recordInference({ model: "m", status: 404, latencyMs: 2 });
    const pulled = await text(t.reader, ["ts_inference_requests_total", "Requests2XX", "Requests4XX"]);
    expect(sample(pulled, "ts_inference_requests_total{")).to.match(/} 6\.0$/);
    expect(sample(pulled, "Requests2XX{")).to.match(/} 5\.0$/);
    expect(sample(pulled, "Requests4XX{")).to.match(/} 1\.0$/);
  });

  it("gives the same totals, to the last bit, as recording every update into the SDK", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.double({ min: 0, max: 1e6, noNaN: true }), fc.constant("collect" as const)), {
          maxLength: 60,
        }),
        async (steps) => {
          const { t, push } = setup();
          const reference = new PullReader(AggregationTemporality.CUMULATIVE);
          const counter = new MeterProvider({ readers: [reference] }).getMeter("r").createCounter("c");
          for (const step of steps) {
            if (step === "collect") {
              await Promise.all([push.collect(), reference.collect()]);
              continue;
            }
            t.recorder.recordInference({ model: "m", status: 200, latencyMs: step });
            counter.add(step * 1000);
          }
          const ours = metricsByName((await push.collect()).resourceMetrics).get(
            "ts_inference_latency_microseconds",
          );
          const theirs = metricsByName((await reference.collect()).resourceMetrics).get("c");
          expect(ours?.dataPoints[0]?.value).to.equal(theirs?.dataPoints[0]?.value);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("never lets a waiting gauge value land after a newer one recorded directly", async () => {
    const { t, text } = setup();
    const series = { Level: "Host" };
    t.recorder.recordInference({ model: "m", status: 200, latencyMs: 9, queueMs: 3 });
    t.recorder.record("QueueTime", 7, series);
    expect(sample(await text(t.reader, ["QueueTime"]), "QueueTime{")).to.match(/} 7\.0$/);
    t.recorder.record("QueueTime", 7, series);
    t.recorder.recordInference({ model: "m", status: 200, latencyMs: 9, queueMs: 3 });
    expect(sample(await text(t.reader, ["QueueTime"]), "QueueTime{")).to.match(/} 3\.0$/);
  });
});

describe("exact totals (TorchServe's order of additions)", () => {
  const custom: MetricDefinition[] = [
    {
      name: "Ticks",
      type: "counter",
      unit: "Count",
      dimensions: ["ModelName", "Hostname"],
      section: "model_metrics",
      buckets: undefined,
    },
    {
      name: "Sizes",
      type: "histogram",
      unit: "ms",
      dimensions: ["ModelName", "Hostname"],
      section: "model_metrics",
      buckets: undefined,
    },
  ];

  /** The pipeline as the service wires it: the scraper shows the running totals. */
  function wired(push?: PullReader) {
    const logger = createMemoryLogger();
    const t = createTelemetry({
      metrics: [...loadDefaultCatalog().metrics, ...custom],
      format: "torchserve",
      hostname: "h",
      logger,
      readers: push === undefined ? [] : [push],
    });
    const scraper = new Scraper(
      t.reader,
      t.families,
      { mode: "prometheus", format: "torchserve", exactTotal: t.exactTotal },
      logger,
    );
    return { t, scrape: () => scraper.scrape(undefined) };
  }

  it("shows TorchServe's 71884.28199999999 where interval sums would give 71884.282", async () => {
    const { t, scrape } = wired();
    const series = t.recorder.bindLine("Ticks", { ModelName: "m" });
    t.recorder.recordLine(series, 71884);
    await scrape();
    // In turn: (71884 + 0.002) + 0.28; summed per interval first: 71884 + (0.002 + 0.28).
    t.recorder.recordLine(series, 0.002);
    t.recorder.recordLine(series, 0.28);
    expect(sample(await scrape(), "Ticks{")).to.equal('Ticks{ModelName="m",Hostname="h",} 71884.28199999999');
  });

  it("gives every counter and histogram sum the same double as adding each update in turn", async () => {
    const step = fc.oneof(
      { weight: 6, arbitrary: fc.double({ min: 0, max: 1e9, noNaN: true }) },
      { weight: 2, arbitrary: fc.integer({ min: 0, max: 3 }).map((n) => n / 10) },
      { weight: 1, arbitrary: fc.constant("scrape" as const) },
      { weight: 1, arbitrary: fc.constant("push" as const) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 80 }), async (steps) => {
        // A second, cumulative reader (OTLP push) collects too, which flushes pending updates.
        const push = new PullReader(AggregationTemporality.CUMULATIVE);
        const { t, scrape } = wired(push);
        const ticks = t.recorder.bindLine("Ticks", { ModelName: "m" });
        const sizes = t.recorder.bindLine("Sizes", { ModelName: "m" });
        let ticksTotal = 0;
        let sizesSum = 0;
        let latencyTotal = 0;
        const check = async () => {
          const text = await scrape();
          expect(sample(text, "Ticks{")).to.equal(
            `Ticks{ModelName="m",Hostname="h",} ${formatJavaDouble(ticksTotal)}`,
          );
          expect(sample(text, "Sizes_sum{")).to.equal(
            `Sizes_sum{ModelName="m",Hostname="h",} ${formatJavaDouble(sizesSum)}`,
          );
          expect(sample(text, "ts_inference_latency_microseconds{")).to.equal(
            `ts_inference_latency_microseconds{model_name="m",model_version="default",hostname="h",} ${formatJavaDouble(latencyTotal)}`,
          );
        };
        t.recorder.recordLine(ticks, 0);
        t.recorder.recordLine(sizes, 0);
        t.recorder.recordInference({ model: "m", status: 200, latencyMs: 0 });
        for (const s of steps) {
          if (s === "scrape") await check();
          else if (s === "push") await push.collect();
          else {
            t.recorder.recordLine(ticks, s);
            t.recorder.recordLine(sizes, s);
            t.recorder.recordInference({ model: "m", status: 200, latencyMs: s / 1000 });
            ticksTotal += s;
            sizesSum += s;
            latencyTotal += (s / 1000) * 1000;
          }
        }
        await check();
      }),
      { numRuns: 150 },
    );
  });
});
