import { expect } from "chai";
import type { ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { request } from "./support/http.js";
import { cleanEnv, runCli, spawnCli, waitForStderr } from "./support/cli.js";
import { until } from "./support/net.js";
import { OtlpReceiver } from "./support/otlp-receiver.js";
import { tempDir } from "./support/temp.js";

function configFile(text: string, name = "config.properties"): string {
  const path = join(tempDir("cli-"), name);
  writeFileSync(path, text);
  return path;
}

const LOOPBACK_ANY_PORT = "metrics_address=http://127.0.0.1:0\nnumber_of_gpu=0\n";

describe("serve-metrics (the command)", function () {
  this.timeout(30_000);

  it("prints usage with --help and exits 0", async () => {
    const { code, stdout } = await runCli(["--help"]);
    expect(code).to.equal(0);
    expect(stdout).to.include("--ts-config");
  });

  it("prints its version with --version", async () => {
    const { code, stdout } = await runCli(["--version"]);
    expect(code).to.equal(0);
    expect(stdout).to.match(/^serve-metrics \d+\.\d+\.\d+\n$/);
  });

  const refusals: [string, () => string[], (file: string) => RegExp[]][] = [
    [
      "a missing config file",
      () => ["--ts-config", "/nonexistent/config.properties"],
      () => [/\/nonexistent\/config\.properties/],
    ],
    [
      "a misspelled metrics_mode",
      () => ["--ts-config", configFile("# comment\nmetrics_mode=promethus\n")],
      (f) => [new RegExp(`${f} line 2`), /metrics_mode/, /"promethus"/, /prometheus, log, legacy/],
    ],
    [
      "a missing metrics YAML",
      () => ["--ts-config", configFile("metrics_config=/nonexistent/metrics.yaml\n")],
      () => [/metrics_config/, /\/nonexistent\/metrics\.yaml/],
    ],
    [
      "an invalid metrics YAML",
      () => [
        "--ts-config",
        configFile(`metrics_config=${configFile("model_metrics:\n  gauge:\n    - {name: G}\n", "m.yaml")}\n`),
      ],
      () => [/m\.yaml: model_metrics\.gauge\[0\] \(G\): unit is missing/],
    ],
    ["an unknown option", () => ["--ts-confg", "x"], () => [/--ts-confg/]],
    [
      "one address for both APIs, before anything listens",
      () => [
        "--ts-config",
        configFile(
          "number_of_gpu=0\nmetrics_address=http://127.0.0.1:18093\nenable_inference_api=true\n" +
            "inference_address=http://127.0.0.1:18093\n",
        ),
      ],
      (f) => [
        new RegExp(
          `^serve-metrics: ${f} line 4: inference_address: "http://127.0.0.1:18093" uses port 18093`,
          "m",
        ),
        new RegExp(`metrics_address=http://127\\.0\\.0\\.1:18093 \\(${f} line 2\\)`),
        // Refused before the metrics API (set up first) opened its port.
        /^(?![^]*listening)/,
      ],
    ],
  ];
  for (const [what, args, messages] of refusals) {
    it(`exits 2 on ${what}, naming what is wrong`, async () => {
      const argv = args();
      const { code, stderr } = await runCli(argv);
      expect(code).to.equal(2);
      for (const m of messages(argv[1] ?? "")) expect(stderr).to.match(m);
      expect(stderr).not.to.match(/\n\s+at /); // a message, not a stack trace
    });
  }

  it("exits 1 with a message naming the address when the port is taken", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      const { code, stderr } = await runCli([
        "--ts-config",
        configFile(`metrics_address=http://127.0.0.1:${port}\nnumber_of_gpu=0\n`),
      ]);
      expect(code).to.equal(1);
      expect(stderr).to.include(`cannot listen on http://127.0.0.1:${port}`).and.to.include("EADDRINUSE");
      expect(stderr).not.to.match(/\n\s+at /);
    } finally {
      blocker.close();
    }
  });

  it("starts from TS_CONFIG_FILE, serves /metrics, warns about unknown keys and stops on SIGTERM", async () => {
    const file = configFile(`${LOOPBACK_ANY_PORT}metric_mode=log\n`);
    const child = spawnCli([], cleanEnv({ TS_CONFIG_FILE: file }));
    try {
      const [, url] = await waitForStderr(child, /metrics API listening on (\S+)\n/);
      const res = await request(url ?? "");
      expect(res.status).to.equal(200);
      expect(res.body).to.match(/^MemoryUsed\{Level="Host",Hostname=".+",\} \d+\.\d+$/m);
    } finally {
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      expect(await exited).to.equal(0);
    }
  });

  it("applies TS_* variables over the file when enable_envvars_config=true", async () => {
    const file = configFile(`${LOOPBACK_ANY_PORT}enable_envvars_config=true\nmetrics_mode=prometheus\n`);
    const child = spawnCli(
      ["--ts-config", file],
      cleanEnv({ TS_METRICS_MODE: "legacy", METRICS_LOCATION: tempDir("cli-logs-") }),
    );
    try {
      const [, url] = await waitForStderr(child, /metrics API listening on (\S+)\n/);
      expect((await request(url ?? "")).body).not.to.include("MemoryUsed");
    } finally {
      await stopped(child);
    }
  });

  describe("with nothing to do, or something", () => {
    const NO_API = "enable_metrics_api=false\nnumber_of_gpu=0\nmetric_time_interval=1\n";

    it("exits 2 at once, naming the settings that would give it work, when it has nothing to do", async () => {
      const { code, stderr } = await runCli(["--ts-config", configFile(NO_API)]);
      expect(code).to.equal(2);
      expect(stderr).to.include("nothing to do");
      for (const key of [
        "enable_metrics_api",
        "enable_inference_api",
        "metrics_mode",
        "metric_log_files",
        "OTLP",
      ]) {
        expect(stderr).to.include(key);
      }
      expect(stderr).not.to.match(/\n\s+at /);
    });

    it("keeps running with metrics_mode=log alone, writing a sample every metric_time_interval", async () => {
      const logs = tempDir("cli-logs-");
      const child = spawnCli(
        ["--ts-config", configFile(`${NO_API}metrics_mode=log\n`)],
        cleanEnv({ METRICS_LOCATION: logs }),
      );
      try {
        const samples = (): number =>
          existsSync(join(logs, "ts_metrics.log"))
            ? readFileSync(join(logs, "ts_metrics.log"), "utf8")
                .split("\n")
                .filter((l) => l.includes("CPUUtilization")).length
            : 0;
        await untilOrExit(child, () => samples() >= 3, "three host samples in ts_metrics.log");
      } finally {
        expect(await stopped(child)).to.equal(0);
      }
    });

    it("in log mode takes SIGHUP as logrotate's reopen, not as a stop", async () => {
      const logs = tempDir("cli-hup-");
      const child = spawnCli(
        ["--ts-config", configFile(`${NO_API}metrics_mode=log\n`)],
        cleanEnv({ METRICS_LOCATION: logs }),
      );
      try {
        const file = join(logs, "ts_metrics.log");
        await untilOrExit(child, () => existsSync(file), "ts_metrics.log");
        child.kill("SIGHUP");
        await waitForStderr(child, /SIGHUP: log-mode files reopened/);
        // Renamed away as logrotate does: the service, still running, writes a new file.
        renameSync(file, `${file}.1`);
        child.kill("SIGHUP");
        await untilOrExit(child, () => existsSync(file), "a reopened ts_metrics.log");
        expect(child.exitCode).to.equal(null);
      } finally {
        expect(await stopped(child)).to.equal(0);
      }
    });

    it("keeps running with OTLP push alone, exporting every interval", async () => {
      const rx = await OtlpReceiver.startHttp();
      const child = spawnCli(
        ["--ts-config", configFile(NO_API)],
        cleanEnv({
          OTEL_METRICS_EXPORTER: "otlp",
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
          OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: rx.endpoint,
          OTEL_METRIC_EXPORT_INTERVAL: "200",
        }),
      );
      try {
        await untilOrExit(child, () => rx.exports.length >= 3, "three OTLP exports");
      } finally {
        expect(await stopped(child)).to.equal(0);
        await rx.close();
      }
    });

    it("keeps running with followed metric_log_files alone, and warns that nothing reads them", async () => {
      const file = join(tempDir("cli-follow-"), "model_log.log");
      writeFileSync(file, "");
      const child = spawnCli(["--ts-config", configFile(`${NO_API}metric_log_files=${file}\n`)]);
      try {
        await waitForStderr(child, /metric_log_files are followed, but nothing reads their metrics/);
        // A malformed line written after start is read and rejected: the follower is still at work.
        appendFileSync(file, "[METRICS]not a metric line\n");
        await waitForStderr(child, /metric lines \(file\): /);
      } finally {
        expect(await stopped(child)).to.equal(0);
      }
    });
  });
});

/** Sends SIGTERM (unless the child has exited already) and resolves with its exit code. */
async function stopped(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  return exited;
}

/** Waits for `check` like until(), failing at once if the child exits first. */
async function untilOrExit(child: ChildProcess, check: () => boolean, what: string): Promise<void> {
  await until(() => {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before ${what}`);
    return check();
  }, what);
}
