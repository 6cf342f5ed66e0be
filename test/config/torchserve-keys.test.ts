import { expect } from "chai";
import { chmodSync, mkdirSync } from "node:fs";
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

  it("reads metric_time_interval from TorchServe's own config.properties named by torchserve_config, 60 when it sets none", () => {
    writeTempFile(dir, "ts/config.properties", "metrics_mode=log\nmetric_time_interval=15\n");
    writeTempFile(dir, "ts/plain.properties", "metrics_mode=log\n");
    const s = resolveText(
      "torchserve_log_dir=logs\ntorchserve_config=ts/config.properties\nmetric_time_interval=5\n",
    );
    expect([s.torchserveConfig, s.torchserveMetricTimeInterval, s.metricTimeInterval]).to.deep.equal([
      join(dir, "ts/config.properties"),
      15,
      5,
    ]);
    expect(resolveText("torchserve_config=ts/plain.properties\n").torchserveMetricTimeInterval).to.equal(60);
    expect(resolveText("torchserve_log_dir=logs\n").torchserveMetricTimeInterval).to.equal(undefined);
  });

  it("refuses a torchserve_config that is missing, a directory or unreadable, naming the key and the path (exit status 2)", () => {
    const missing = catchConfigError(() => resolveText("torchserve_config=ts/none.properties\n"));
    expect(missing).to.include({ key: "torchserve_config", value: "ts/none.properties", exitCode: 2 });
    expect(missing.message).to.contain("torchserve_config").and.contain(join(dir, "ts/none.properties"));
    mkdirSync(join(dir, "ts"));
    const directory = catchConfigError(() => resolveText("torchserve_config=ts\n"));
    expect(directory).to.include({ key: "torchserve_config", value: "ts" });
    expect(directory.message).to.contain(`names ${join(dir, "ts")}, which is not a file`);
    if (process.getuid?.() !== 0) {
      const secret = writeTempFile(dir, "ts/secret.properties", "metric_time_interval=15\n");
      chmodSync(secret, 0o000);
      const unreadable = catchConfigError(() => resolveText(`torchserve_config=${secret}\n`));
      expect(unreadable).to.include({ key: "torchserve_config", value: secret });
      expect(unreadable.message).to.contain("no readable file");
    }
  });

  it("refuses a metric_time_interval in TorchServe's config.properties that TorchServe would refuse, naming its file, line and value", () => {
    for (const bad of ["1.5", "0", "sixty", "60 s", "-5"]) {
      const ts = writeTempFile(
        dir,
        "ts/config.properties",
        `metrics_mode=log\nmetric_time_interval=${bad}\n`,
      );
      const err = catchConfigError(() => resolveText("torchserve_config=ts/config.properties\n"));
      expect(err, bad).to.include({
        file: ts,
        line: 2,
        key: "metric_time_interval",
        value: bad,
        exitCode: 2,
      });
      expect(err.message, bad).to.contain("torchserve_config=ts/config.properties");
    }
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
