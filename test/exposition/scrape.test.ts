import { AggregationTemporality, MeterProvider } from "@opentelemetry/sdk-metrics";
import { expect } from "chai";
import { setTimeout as sleep } from "node:timers/promises";
import { PullReader } from "../../src/exposition/pull-reader.js";
import { Scraper, type ScrapeOptions } from "../../src/exposition/scrape.js";
import type { FamilySpec } from "../../src/exposition/torchserve-text.js";
import { createMemoryLogger } from "../../src/log.js";

const FAMILIES: FamilySpec[] = [
  { name: "Hits", type: "counter", unit: "Count", labels: ["Model"] },
  { name: "ts_inference_requests_total", type: "counter", unit: "Count", labels: ["model_name"] },
  { name: "Slow", type: "gauge", unit: "Count", labels: [] },
];

function setup(options: Partial<ScrapeOptions> = {}) {
  const reader = new PullReader(AggregationTemporality.DELTA);
  const provider = new MeterProvider({ readers: [reader] });
  const hits = provider.getMeter("a").createCounter("Hits");
  const requests = provider.getMeter("a").createCounter("ts_inference_requests_total");
  const scraper = new Scraper(
    reader,
    FAMILIES,
    { mode: "prometheus", format: "torchserve", ...options },
    createMemoryLogger(),
  );
  return { provider, hits, requests, scraper };
}

describe("Scraper", () => {
  it("serializes scrapes, so a scrape never renders before an earlier one's deltas are in", async () => {
    const { provider, hits, scraper } = setup();
    // A second meter whose callback is slow once: the first collection takes the first meter's
    // deltas at once, then waits on this one; a second scrape started meanwhile must not overtake.
    let calls = 0;
    provider
      .getMeter("b")
      .createObservableGauge("Slow")
      .addCallback(async (result) => {
        if (calls++ === 0) await sleep(100);
        result.observe(calls);
      });
    hits.add(1, { Model: "a" });
    const first = scraper.scrape(undefined);
    await sleep(20);
    hits.add(1, { Model: "b" });
    const second = await scraper.scrape(undefined);
    expect(second).to.include('Hits{Model="a",} 1.0\n').and.include('Hits{Model="b",} 1.0\n');
    expect(await first).to.include('Hits{Model="a",} 1.0\n');
  });

  it("shows only the three ts_* counters in legacy mode, and nothing in log mode", async () => {
    const legacy = setup({ mode: "legacy" });
    legacy.hits.add(1, { Model: "a" });
    legacy.requests.add(2, { model_name: "m" });
    expect(await legacy.scraper.scrape(undefined)).to.equal(
      "# HELP ts_inference_requests_total Torchserve prometheus counter metric with unit: Count\n" +
        "# TYPE ts_inference_requests_total counter\n" +
        'ts_inference_requests_total{model_name="m",} 2.0\n',
    );
    const log = setup({ mode: "log" });
    log.hits.add(1, { Model: "a" });
    expect(await log.scraper.scrape(undefined)).to.equal("");
  });

  it("keeps counting across scrapes: the store adds each delta to what it holds", async () => {
    const { hits, scraper } = setup();
    for (let i = 1; i <= 3; i++) {
      hits.add(i, { Model: "a" });
      expect(await scraper.scrape(new Set(["Hits"]))).to.include(`Hits{Model="a",} ${(i * (i + 1)) / 2}.0\n`);
    }
  });

  it("keeps what a drain collects: the next scrape still shows every update", async () => {
    const { hits, scraper } = setup();
    hits.add(1, { Model: "a" });
    await scraper.drain();
    hits.add(2, { Model: "a" });
    expect(await scraper.scrape(new Set(["Hits"]))).to.include('Hits{Model="a",} 3.0\n');
  });
});
