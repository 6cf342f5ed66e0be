import { expect } from "chai";
import { setTimeout as sleep } from "node:timers/promises";
import { describeTorchServeSilence, SilenceWatch } from "../../src/sources/silence-watch.js";
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

  it("asks a function for the silence length at each check (a cadence learned meanwhile)", async () => {
    const silences: number[] = [];
    let afterMs = 10_000;
    watch = new SilenceWatch({
      afterMs: () => afterMs,
      lastHeard: () => undefined,
      onSilence: (ms) => silences.push(ms),
    });
    watch.start();
    afterMs = 30;
    // The first check is armed for 10 s; a cadence learned later applies from the next check on.
    expect(silences).to.deep.equal([]);
    watch.stop();
    watch = new SilenceWatch({
      afterMs: () => afterMs,
      lastHeard: () => undefined,
      onSilence: (ms) => silences.push(ms),
    });
    watch.start();
    await until(() => silences.length === 1, "the report");
  });
});

describe("describeTorchServeSilence", () => {
  const base = { silentMs: 130_000, logDir: "/logs", intervalMs: 60_000 };

  it("says lines stopped (not: switch to log mode) when metric lines came before", () => {
    const text = describeTorchServeSilence({ ...base, sawMetricLines: true, accessLines: 5 });
    expect(text).to.match(
      /^TorchServe's metric lines stopped 130 s ago \(torchserve_log_dir=\/logs\); it writes host metrics every 60 s/,
    );
    expect(text).not.to.include("Set metrics_mode=log");
  });

  it("names metrics_mode=prometheus when the access log speaks and the metric files do not", () => {
    const text = describeTorchServeSilence({ ...base, sawMetricLines: false, accessLines: 3 });
    expect(text).to.match(
      /^TorchServe answered 3 requests in its access log but wrote no metric line in 130 s/,
    );
    expect(text).to.include("Set metrics_mode=log");
  });

  it("asks whether TorchServe runs and the directory is right when nothing came", () => {
    const text = describeTorchServeSilence({ ...base, sawMetricLines: false, accessLines: 0 });
    expect(text).to.match(/^nothing from TorchServe in 130 s \(torchserve_log_dir=\/logs\): is it running/);
  });
});
