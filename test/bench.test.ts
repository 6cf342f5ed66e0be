import { expect } from "chai";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./support/temp.js";

/**
 * The benchmark harness's quick mode, as a smoke test: every scenario runs against its peers and
 * reports a figure for every target. Pass or fail of a target is not asserted (no timings in tests).
 */
describe("npm run bench:quick (the benchmark harness)", function () {
  this.timeout(240_000);

  it("runs every scenario and reports a measured figure for every target", async () => {
    const out = join(tempDir("bench-"), "results.md");
    const child = spawn(process.execPath, ["--import", "tsx", "bench/run.ts", "--quick", "--out", out], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-4000)));
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code, stderr).to.equal(0);
    const text = readFileSync(out, "utf8");
    for (const title of [
      "## Scrape: GET /metrics end to end",
      "## Scrape: series from POST /metric-lines",
      "## Record: one inference request",
      "## Frontend: inference requests through a proxy",
      "## Idle: the service's own CPU and memory",
      "## Memory: per series",
      "## Ingest: TorchServe's log files, serve-metrics against mtail",
      "## Protobuf exposition: 10k series against the text",
    ]) {
      expect(text).to.include(title);
    }
    const targets = text
      .slice(text.indexOf("## Targets"))
      .split("\n")
      .filter((l) => / (PASS|FAIL) +\|$/.test(l));
    expect(targets.length).to.be.at.least(10);
    for (const row of targets) {
      const measured = row.split("|")[2]?.trim() ?? "";
      // Added latency is target minus direct, medians of few rounds here: noise can make it negative.
      expect(measured, row).to.match(/^-?\d[\d,.]*(×| ms| B| KiB|%)$/);
    }
  });
});
