import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { resolveSettings } from "../../src/config/settings.js";
import type { Settings } from "../../src/config/types.js";
import { createMemoryLogger } from "../../src/log.js";
import { catchConfigError, makeTempDir, removeTempDir, writeTempFile } from "./support.js";

describe("the inference frontend's keys", () => {
  let dir: string;
  beforeEach(() => (dir = makeTempDir()));
  afterEach(() => removeTempDir(dir));

  function resolveText(text: string): Settings {
    writeTempFile(dir, "config.properties", text);
    return resolveSettings({ file: "config.properties", env: {}, logger: createMemoryLogger(), cwd: dir });
  }

  it("reads job_queue_size, metric_lines_max_bytes and request_duration_buckets", () => {
    const s = resolveText(
      "job_queue_size=7\nmetric_lines_max_bytes=2048\nrequest_duration_buckets=0.1, 0.5,2\n",
    );
    expect([s.jobQueueSize, s.metricLinesMaxBytes, s.requestDurationBuckets]).to.deep.equal([
      7,
      2048,
      [0.1, 0.5, 2],
    ]);
  });

  it("reads series_expiry_seconds and max_series_per_metric", () => {
    const s = resolveText("series_expiry_seconds=600\nmax_series_per_metric=100\n");
    expect([s.seriesExpirySeconds, s.maxSeriesPerMetric]).to.deep.equal([600, 100]);
  });

  it("reads metric_log_files as a comma-separated list resolved against the working directory", () => {
    expect(
      resolveText("metric_log_files=logs/model_metrics.log, /var/log/w.log,\n").metricLogFiles,
    ).to.deep.equal([join(dir, "logs/model_metrics.log"), "/var/log/w.log"]);
  });

  it("accepts metric_log_files naming regular files, symbolic links to them and files that do not exist yet", () => {
    const file = writeTempFile(dir, "w.log", "");
    symlinkSync(file, join(dir, "link.log"));
    expect(resolveText("metric_log_files=w.log,link.log,later.log\n").metricLogFiles).to.have.length(3);
  });

  it("refuses metric_log_files naming a FIFO, a device or a directory, naming the file, key and value", () => {
    execFileSync("mkfifo", [join(dir, "pipe")]);
    mkdirSync(join(dir, "logs"));
    writeTempFile(dir, "w.log", "");
    const cases: [string, string][] = [
      ["pipe", "FIFO"],
      ["/dev/zero", "character device"],
      ["/dev/null", "character device"],
      ["logs", "directory"],
    ];
    for (const [path, kind] of cases) {
      const value = `w.log, ${path}`;
      const error = catchConfigError(() => resolveText(`metric_log_files=${value}\n`));
      expect(error.message).to.equal(
        `${join(dir, "config.properties")} line 1: metric_log_files: ${JSON.stringify(value)} ` +
          `names ${path.startsWith("/") ? path : join(dir, path)}, which is a ${kind}; only regular files can be followed`,
      );
      expect([error.key, error.value]).to.deep.equal(["metric_log_files", value]);
    }
  });

  const refusals: [string, RegExp][] = [
    ["job_queue_size=-1", /job_queue_size: "-1" is not an integer from 0 to 1000000/],
    ["metric_lines_max_bytes=0", /metric_lines_max_bytes: "0" is not an integer from 1/],
    [
      "request_duration_buckets=1,0.5",
      /request_duration_buckets: "1,0.5" is not a comma-separated list of increasing numbers/,
    ],
    ["request_duration_buckets=a", /is not a comma-separated list/],
    ["models={", /models: "\{" is not valid JSON/],
    [
      "series_expiry_seconds=60",
      /series_expiry_seconds: "60" is shorter than twice metric_time_interval \(60 s\)/,
    ],
  ];
  for (const [line, message] of refusals) {
    it(`refuses ${line}`, () => {
      expect(catchConfigError(() => resolveText(`${line}\n`)).message)
        .to.match(/config\.properties line 1: /)
        .and.to.match(message);
    });
  }
});
