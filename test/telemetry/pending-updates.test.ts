import { AggregationTemporality, MeterProvider } from "@opentelemetry/sdk-metrics";
import { expect } from "chai";
import fc from "fast-check";
import { loadDefaultCatalog } from "../../src/catalog/load.js";
import { metricsByName, PullReader } from "../../src/exposition/pull-reader.js";
import { renderTorchServeText } from "../../src/exposition/series-store.js";
import { createMemoryLogger } from "../../src/log.js";
import { createTelemetry } from "../../src/telemetry/pipeline.js";

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
