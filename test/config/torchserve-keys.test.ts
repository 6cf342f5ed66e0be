import { expect } from "chai";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { resolveSettings } from "../../src/config/settings.js";
import type { Settings } from "../../src/config/types.js";
import { createMemoryLogger } from "../../src/log.js";
import { catchConfigError, makeTempDir, removeTempDir, writeTempFile } from "./support.js";

describe("the keys for following a running TorchServe", () => {
  let dir: string;
  beforeEach(() => (dir = makeTempDir()));
  afterEach(() => removeTempDir(dir));

  function resolveText(text: string): Settings {
    writeTempFile(dir, "config.properties", text);
    return resolveSettings({ file: "config.properties", env: {}, logger: createMemoryLogger(), cwd: dir });
  }

  it("reads torchserve_log_dir and torchserve_metrics_dir against the working directory, existing or not", () => {
    mkdirSync(join(dir, "logs"));
    const s = resolveText(
      "torchserve_log_dir=logs\ntorchserve_metrics_dir=/var/ts/metrics\ntorchserve_log_from_start=true\n",
    );
    expect([s.torchserveLogDir, s.torchserveMetricsDir, s.torchserveLogFromStart]).to.deep.equal([
      join(dir, "logs"),
      "/var/ts/metrics",
      true,
    ]);
  });

  it("leaves system sampling undecided unless disable_system_metrics is set", () => {
    expect(resolveText("torchserve_log_dir=logs\n").disableSystemMetrics).to.equal(undefined);
    expect(resolveText("disable_system_metrics=false\n").disableSystemMetrics).to.equal(false);
  });

  it("refuses a torchserve_log_dir that is a file, naming the file, key and value", () => {
    writeTempFile(dir, "ts_log.log", "");
    const err = catchConfigError(() => resolveText("torchserve_log_dir=ts_log.log\n"));
    expect(err).to.include({ key: "torchserve_log_dir", value: "ts_log.log", exitCode: 2 });
    expect(err.message).to.contain("not a directory");
  });

  it("refuses torchserve_metrics_dir without torchserve_log_dir", () => {
    const err = catchConfigError(() => resolveText("torchserve_metrics_dir=metrics\n"));
    expect(err).to.include({ key: "torchserve_metrics_dir", value: "metrics" });
    expect(err.message).to.contain("needs torchserve_log_dir");
  });

  it("reads histogram_gauges as a list of metric names, possibly empty, and refuses other text", () => {
    expect(resolveText("histogram_gauges=HandlerTime, MyGauge\n").histogramGauges).to.deep.equal([
      "HandlerTime",
      "MyGauge",
    ]);
    expect(resolveText("histogram_gauges=\n").histogramGauges).to.deep.equal([]);
    const err = catchConfigError(() => resolveText("histogram_gauges=HandlerTime,p99 time\n"));
    expect(err).to.include({ key: "histogram_gauges" });
    expect(err.message).to.contain('"p99 time"');
  });
});
