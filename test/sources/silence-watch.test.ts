import { expect } from "chai";
import { setTimeout as sleep } from "node:timers/promises";
import { SilenceWatch } from "../../src/sources/silence-watch.js";
import { until } from "../support/net.js";

describe("SilenceWatch", () => {
  let watch: SilenceWatch | undefined;
  afterEach(() => watch?.stop());

  it("reports a silence once, and again only after something was heard in between", async () => {
    const silences: number[] = [];
    const source: { heard?: number } = {};
    watch = new SilenceWatch({
      afterMs: 40,
      lastHeard: () => source.heard,
      onSilence: (ms) => silences.push(ms),
    });
    watch.start();
    await until(() => silences.length === 1, "the first report");
    expect(silences[0]).to.be.at.least(40);
    // Several more periods of silence: still one report.
    await sleep(150);
    expect(silences).to.have.length(1);
    source.heard = Date.now();
    await until(() => silences.length === 2, "the second report");
  });

  it("reports nothing while the source keeps speaking", async () => {
    const silences: number[] = [];
    const source: { heard?: number } = {};
    // Three periods long in all, heard ten times a period.
    watch = new SilenceWatch({
      afterMs: 500,
      lastHeard: () => source.heard,
      onSilence: (ms) => silences.push(ms),
    });
    watch.start();
    for (let i = 0; i < 30; i++) {
      await sleep(50);
      source.heard = Date.now();
    }
    expect(silences).to.deep.equal([]);
  });
});
