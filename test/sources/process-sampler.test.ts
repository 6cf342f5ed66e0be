import { expect } from "chai";
import { createMemoryLogger } from "../../src/log.js";
import { ProcessSampler, type ProcessReading } from "../../src/sources/process-sampler.js";
import type { ProcessSample } from "../../src/sources/process.js";

const SAMPLE: ProcessSample = {
  cpuSeconds: 1,
  residentBytes: 2,
  startTimeSeconds: 3,
  openFds: 4,
  maxFds: 5,
};

describe("ProcessSampler", () => {
  let sampler: ProcessSampler | undefined;
  afterEach(() => sampler?.stop());

  it("delivers a first reading before start() resolves", async () => {
    const readings: ProcessReading[] = [];
    sampler = new ProcessSampler({
      intervalMs: 60_000,
      logger: createMemoryLogger(),
      onSample: (r) => readings.push(r),
      read: () => Promise.resolve(SAMPLE),
    });
    await sampler.start();
    expect(readings).to.have.length(1);
    expect(readings[0]).to.include(SAMPLE);
  });

  it("measures a blocked event loop as delay", async () => {
    const readings: ProcessReading[] = [];
    sampler = new ProcessSampler({
      intervalMs: 60_000,
      logger: createMemoryLogger(),
      onSample: (r) => readings.push(r),
      read: () => Promise.resolve(SAMPLE),
    });
    await sampler.start();
    // Let the delay timer fire a few times, then block the loop for 300 ms.
    await new Promise((r) => setTimeout(r, 200));
    const until = performance.now() + 300;
    while (performance.now() < until);
    await new Promise((r) => setTimeout(r, 100));
    await sampler.sampleNow();
    const delay = readings.at(-1)?.eventLoopDelay;
    expect(delay?.max).to.be.at.least(0.2);
    expect(delay?.p50).to.be.at.most(delay?.max ?? 0);
  });

  it("logs a failing reading once, and once when it works again", async () => {
    const logger = createMemoryLogger();
    let failing = true;
    const readings: ProcessReading[] = [];
    sampler = new ProcessSampler({
      intervalMs: 60_000,
      logger,
      onSample: (r) => readings.push(r),
      read: () =>
        failing ? Promise.reject(new Error("EMFILE: too many open files")) : Promise.resolve(SAMPLE),
    });
    await sampler.start();
    await sampler.sampleNow();
    expect(readings).to.have.length(0);
    expect(logger.lines).to.deep.equal([
      "WARN process metrics: EMFILE: too many open files; they have no new values",
    ]);
    failing = false;
    await sampler.sampleNow();
    await sampler.sampleNow();
    expect(readings).to.have.length(2);
    expect(logger.lines.slice(1)).to.deep.equal(["INFO process metrics: reading this process works again"]);
  });

  it("refuses an interval that is not a positive number", () => {
    const make = (intervalMs: number) => () =>
      new ProcessSampler({ intervalMs, logger: createMemoryLogger(), onSample: () => undefined });
    expect(make(0)).to.throw(RangeError, "intervalMs must be a positive number, got 0");
    expect(make(NaN)).to.throw(RangeError);
  });
});
