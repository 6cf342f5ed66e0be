import { expect } from "chai";
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { request as httpRequest } from "node:http";
import { connect, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { makeCertificate } from "../support/certificates.js";
import { REPO_ROOT, cleanEnv, spawnCli, waitForStderr, writeCliConfig } from "../support/cli.js";
import { request } from "../support/http.js";
import { until } from "../support/net.js";
import { OtlpReceiver, type ReceivedExport } from "../support/otlp-receiver.js";
import { tempDir } from "../support/temp.js";
import { requireTool } from "../support/tools.js";

const ECHO = "node test/fixtures/workers/echo-worker.js --port {port}";

/** How one client's request ended: an answer, or an error on its connection. */
type Outcome = { status: number; body: string } | { error: string };

/** POSTs to the inference API on a connection of its own. */
function predict(base: string, path: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = httpRequest(`${base}${path}`, { method: "POST", agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", (err) => resolve({ error: err.message }));
    });
    req.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end("{}");
  });
}

/** The value of a pushed counter or gauge, summed over its points. */
function pushed(received: ReceivedExport, name: string): number {
  const metric = received.metrics.find((m) => m.name === name);
  return (metric?.points ?? []).reduce((sum, p) => sum + (typeof p.value === "number" ? p.value : 0), 0);
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code));
  });
}

/** A raw connection that has sent `bytes` and then says nothing more; resolves once connected. */
function stalled(port: number, bytes: string): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(bytes);
      resolve({ socket, closed: new Promise((done) => socket.once("close", () => done())) });
    });
    socket.on("error", reject);
  });
}

describe("stopping the service (SIGTERM)", function () {
  this.timeout(90_000);

  it("under load with a queue: every request gets a 200 or a 503 JSON answer, each counted, and it exits", async () => {
    const workers = 4;
    const clients = 40;
    const rx = await OtlpReceiver.startHttp();
    const config = writeCliConfig(tempDir("stop-load-"), { m: { "1": { command: ECHO, workers } } }, [
      "job_queue_size=100",
      "drain_timeout=30",
    ]);
    const cli = spawnCli(
      ["--ts-config", config],
      cleanEnv({
        OTEL_METRICS_EXPORTER: "otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: rx.endpoint,
        // Only the final export, made by the stop, carries the counts.
        OTEL_METRIC_EXPORT_INTERVAL: "600000",
      }),
    );
    const exited = exitOf(cli);
    try {
      // One wait for both lines: they may come in one chunk, which a second wait would miss.
      const [, metricsUrl, base] = await waitForStderr(
        cli,
        /metrics API listening on (\S+)\n[^]*inference API listening on (\S+) /,
      );
      let scrapes = 0;
      const scrape = async (): Promise<string> => {
        const res = await request(metricsUrl ?? "");
        scrapes++;
        return res.body;
      };
      await until(
        async () => /^serve_workers\{[^}]*state="ready"[^}]*\} 4\.0$/m.test(await scrape()),
        "4 ready workers",
        30_000,
      );
      // Each request holds its worker 3 s: 4 are dispatched, the other 36 queue behind them.
      const outcomes = Array.from({ length: clients }, () =>
        predict(base ?? "", "/predictions/m?sleep=3000"),
      );
      await until(
        async () => /^serve_queue_depth\{[^}]*\} 36\.0$/m.test(await scrape()),
        "36 queued requests",
        20_000,
      );
      const signalledAt = performance.now();
      cli.kill("SIGTERM");
      const results = await Promise.all(outcomes);
      expect(await exited).to.equal(0);
      const stopSeconds = (performance.now() - signalledAt) / 1000;

      const errors = results.filter((r) => "error" in r);
      expect(errors, "requests that got no answer").to.deep.equal([]);
      const answers = results.filter((r): r is { status: number; body: string } => "status" in r);
      const ok = answers.filter((r) => r.status === 200);
      const refused = answers.filter((r) => r.status === 503);
      expect(ok).to.have.length(workers);
      expect(refused).to.have.length(clients - workers);
      for (const r of refused) {
        const body = JSON.parse(r.body) as { code: number; message: string };
        expect(body.code).to.equal(503);
        expect(body.message).to.include("the service is stopping");
      }
      // Well inside drain_timeout: the stop waits for the dispatched requests, not the whole 30 s.
      expect(stopSeconds).to.be.below(30);

      // The final push, made after the drain, counts every response the stop sent.
      const last = rx.latest();
      expect(pushed(last, "Requests5XX")).to.equal(clients - workers);
      expect(pushed(last, "Requests2XX")).to.equal(workers + scrapes);
    } finally {
      if (cli.exitCode === null) cli.kill("SIGKILL");
      await rx.close();
    }
  });

  it("exits within drain_timeout while clients hold an idle keep-alive connection, half-sent headers and a half-sent body", async () => {
    const drainSeconds = 2;
    const config = writeCliConfig(tempDir("stop-held-"), {}, [
      "enable_inference_api=true",
      `drain_timeout=${drainSeconds}`,
    ]);
    const cli = spawnCli(["--ts-config", config], cleanEnv());
    const exited = exitOf(cli);
    try {
      const [, metricsPort, inferencePort] = await waitForStderr(
        cli,
        /metrics API listening on http:\/\/127\.0\.0\.1:(\d+)[^]*inference API listening on http:\/\/127\.0\.0\.1:(\d+)/,
      );
      const mPort = Number(metricsPort);
      const iPort = Number(inferencePort);
      // An idle keep-alive connection after one whole exchange.
      const idle = await stalled(mPort, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
      await new Promise<void>((resolve) => idle.socket.once("data", () => resolve()));
      const headers = await stalled(iPort, "POST /metric-lines HTTP/1.1\r\nHost: x\r\nContent-Le");
      // Expect: 100-continue: the server's "100 Continue" shows that it has the request's headers.
      const body = await stalled(
        iPort,
        "POST /metric-lines HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n",
      );
      await new Promise<void>((resolve) => body.socket.once("data", () => resolve()));
      body.socket.write("[METRICS]");
      const signalledAt = performance.now();
      cli.kill("SIGTERM");
      expect(await exited).to.equal(0);
      const stopSeconds = (performance.now() - signalledAt) / 1000;
      // The server ended every one of them; none of the clients closed its side.
      await Promise.all([idle.closed, headers.closed, body.closed]);
      // The half-sent body is a request in flight: it is given the drain time, and no more.
      expect(stopSeconds).to.be.at.least(drainSeconds * 0.9);
      expect(stopSeconds).to.be.below(drainSeconds + 8);
    } finally {
      if (cli.exitCode === null) cli.kill("SIGKILL");
    }
  });

  it("exits at once when a client only holds an idle connection or half-sent headers", async () => {
    const config = writeCliConfig(tempDir("stop-idle-"), {}, [
      "enable_inference_api=true",
      "drain_timeout=60",
    ]);
    const cli = spawnCli(["--ts-config", config], cleanEnv());
    const exited = exitOf(cli);
    try {
      const [, metricsPort] = await waitForStderr(
        cli,
        /metrics API listening on http:\/\/127\.0\.0\.1:(\d+)/,
      );
      const idle = await stalled(Number(metricsPort), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
      await new Promise<void>((resolve) => idle.socket.once("data", () => resolve()));
      const headers = await stalled(Number(metricsPort), "GET /metrics HTTP/1.1\r\nHo");
      const signalledAt = performance.now();
      cli.kill("SIGTERM");
      expect(await exited).to.equal(0);
      await Promise.all([idle.closed, headers.closed]);
      // Nothing was being answered, so nothing waits for drain_timeout (60 s), nor for a fixed
      // grace (before drain_timeout the stop always took 10 s here).
      expect((performance.now() - signalledAt) / 1000).to.be.below(8);
    } finally {
      if (cli.exitCode === null) cli.kill("SIGKILL");
    }
  });
  it("exits within drain_timeout while a client holds an https connection that never starts its TLS handshake", async function () {
    requireTool(this, "openssl");
    const dir = tempDir("stop-tls-");
    const { key, cert } = makeCertificate(dir, "a");
    const drainSeconds = 2;
    const config = join(dir, "config.properties");
    writeFileSync(
      config,
      [
        "metrics_address=https://127.0.0.1:0",
        "number_of_gpu=0",
        `certificate_file=${cert}`,
        `private_key_file=${key}`,
        `drain_timeout=${drainSeconds}`,
      ].join("\n"),
    );
    const cli = spawnCli(["--ts-config", config], cleanEnv());
    const exited = exitOf(cli);
    try {
      const [, port] = await waitForStderr(cli, /metrics API listening on https:\/\/127\.0\.0\.1:(\d+)/);
      // TCP only: not one byte of a ClientHello.
      const silent = await stalled(Number(port), "");
      const signalledAt = performance.now();
      cli.kill("SIGTERM");
      expect(await exited).to.equal(0);
      await silent.closed;
      // Before, the service stayed up as long as such a client did (issue 23).
      expect((performance.now() - signalledAt) / 1000).to.be.below(drainSeconds + 8);
    } finally {
      if (cli.exitCode === null) cli.kill("SIGKILL");
    }
  });
  it("a SIGTERM during the start stops the service once it is up, with exit 0", async () => {
    const dir = tempDir("stop-starting-");
    const config = join(dir, "config.properties");
    // A hanging nvidia-smi holds the start (the first sample) for nvidia_smi_timeout_ms.
    writeFileSync(
      config,
      [
        "metrics_address=http://127.0.0.1:0",
        `nvidia_smi_path=${join(REPO_ROOT, "test/fixtures/nvidia-smi/fake-nvidia-smi.js")}`,
        "nvidia_smi_timeout_ms=3000",
        "a_key_to_warn_about=1",
      ].join("\n"),
    );
    const cli = spawnCli(["--ts-config", config], cleanEnv({ FAKE_NVIDIA_SMI: "hang" }));
    const exited = exitOf(cli);
    let stderr = "";
    cli.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      // Settings are read (and the signal handlers installed) before the sampler starts.
      await waitForStderr(cli, /unknown key "a_key_to_warn_about"/);
      cli.kill("SIGTERM");
      expect(await exited).to.equal(0);
      expect(stderr).to.match(
        /SIGTERM: stopping as soon as the start is done[^]*metrics API listening[^]*SIGTERM: stopping \(/,
      );
    } finally {
      if (cli.exitCode === null) cli.kill("SIGKILL");
    }
  });
});
