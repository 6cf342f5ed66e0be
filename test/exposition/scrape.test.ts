import { AggregationTemporality, MeterProvider } from "@opentelemetry/sdk-metrics";
import { expect } from "chai";
import { setTimeout as sleep } from "node:timers/promises";
import { PullReader } from "../../src/exposition/pull-reader.js";
import { Scraper, type ScrapeOptions } from "../../src/exposition/scrape.js";
import type { FamilySpec } from "../../src/exposition/torchserve-text.js";
import { createMemoryLogger } from "../../src/log.js";
import { SeriesActivity } from "../../src/telemetry/series-activity.js";

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

  it("lets scrapes that arrive while one waits its turn share its collection and chunks", async () => {
    const { provider, hits, scraper } = setup();
    let collections = 0;
    provider
      .getMeter("b")
      .createObservableGauge("Slow")
      .addCallback(async (result) => {
        collections++;
        await sleep(50);
        result.observe(collections);
      });
    const pad = "p".repeat(100);
    for (let i = 0; i < 1000; i++) hits.add(1, { Model: `${pad}${i}` });
    const running = scraper.scrapeChunks(undefined);
    await sleep(10);
    // The first collection is under way: what is recorded now must reach the scrapes below.
    hits.add(1, { Model: "late" });
    const waiting = [1, 2, 3].map(() => scraper.scrapeChunks(undefined));
    const filtered = scraper.scrapeChunks(new Set(["Hits"]));
    const [first, a, b, c] = await Promise.all([running, ...waiting]);
    if (a === undefined || b === undefined || c === undefined) throw new Error("missing");
    expect(Buffer.concat(a).toString()).to.include('Hits{Model="late",} 1.0\n');
    expect(Buffer.concat(first).toString()).not.to.include('Model="late"');
    // The same chunk objects, in arrays of their own.
    expect(a).not.to.equal(b);
    expect(a.length).to.be.greaterThan(1);
    a.forEach((chunk, i) => {
      expect(chunk).to.equal(b[i]);
      expect(chunk).to.equal(c[i]);
    });
    expect(Buffer.concat(await filtered).toString()).to.include('Hits{Model="late",} 1.0\n');
    expect(collections).to.equal(3); // the running one, the three joined in one, the filtered one
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

  describe("with series expiry", () => {
    /** A scraper with a 1 s expiry on a clock the test moves, and at most `limit` series per family. */
    function expiring(limit: number) {
      const clock = { t: 0 };
      const activity = new SeriesActivity(1000, () => clock.t);
      const overflowed: string[] = [];
      const s = setup({ activity, seriesLimit: () => limit, onOverflow: (m) => overflowed.push(m) });
      const hitLines = async () =>
        (await s.scraper.scrape(new Set(["Hits"]))).split("\n").filter((l) => l.startsWith("Hits{"));
      return { ...s, clock, activity, overflowed, hitLines };
    }

    it("evicts an idle series: it leaves the text and the cap, and a later update starts it from zero", async () => {
      const { hits, clock, hitLines } = expiring(3);
      hits.add(5, { Model: "old" });
      hits.add(1, { Model: "live" });
      await hitLines();
      clock.t = 800;
      hits.add(1, { Model: "live" });
      expect(await hitLines()).to.deep.equal(['Hits{Model="old",} 5.0', 'Hits{Model="live",} 2.0']);
      clock.t = 1500;
      expect(await hitLines()).to.deep.equal(['Hits{Model="live",} 2.0']);
      clock.t = 1600;
      hits.add(1, { Model: "new" });
      hits.add(2, { Model: "old" });
      // old is back as a new series (2, not 7), after new; the cap no longer counts the expired one.
      expect(await hitLines()).to.deep.equal([
        'Hits{Model="live",} 2.0',
        'Hits{Model="new",} 1.0',
        'Hits{Model="old",} 2.0',
      ]);
      clock.t = 1700;
      hits.add(4, { Model: "fourth" });
      expect(await hitLines()).to.have.members([
        'Hits{Model="live",} 2.0',
        'Hits{Model="new",} 1.0',
        'Hits{Model="old",} 2.0',
        'Hits{otel_metric_overflow="true",} 4.0',
      ]);
      clock.t = 2701; // everything idle for more than 1 s, the overflow series included
      expect(await hitLines()).to.deep.equal([]);
    });

    it("tracks only the series the store keeps: overflowed label sets never one by one", async () => {
      const { hits, clock, activity, overflowed, hitLines } = expiring(10);
      for (let i = 0; i < 1000; i++) hits.add(1, { Model: `m${i}` });
      expect(await hitLines()).to.have.length(11);
      expect(activity.size).to.equal(11); // 10 series and the overflow series
      expect(overflowed).to.deep.equal(["Hits"]);
      clock.t = 1001;
      await hitLines();
      expect(activity.size).to.equal(0);
      for (let i = 1000; i < 1010; i++) hits.add(1, { Model: `m${i}` });
      expect(await hitLines()).to.have.length(10); // the expired ones no longer hold the cap
      expect(activity.size).to.equal(10);
    });

    it("evicts on a drain too, so memory comes back with nobody scraping", async () => {
      const { hits, clock, activity, scraper } = expiring(10);
      hits.add(1, { Model: "a" });
      await scraper.drain();
      expect(activity.size).to.equal(1);
      clock.t = 1001;
      await scraper.drain();
      expect(activity.size).to.equal(0);
      hits.add(1, { Model: "a" });
      expect(await scraper.scrape(new Set(["Hits"]))).to.include('Hits{Model="a",} 1.0\n');
    });
  });

  it("hands the exposition over as chunks that make up exactly the text scrape() returns", async () => {
    const { hits, scraper } = setup();
    // Below the SDK's own per-collection limit (2000), long enough for several chunks.
    const pad = "p".repeat(100);
    for (let i = 0; i < 1500; i++) hits.add(i, { Model: `${pad}${i}` });
    const chunks = await scraper.scrapeChunks(undefined);
    expect(chunks.length).to.be.greaterThan(FAMILIES.length + 1);
    const text = Buffer.concat(chunks).toString();
    expect(text).to.include(`Hits{Model="${pad}1499",} 1499.0\n`);
    expect(await scraper.scrape(undefined)).to.equal(text);
  });
});
