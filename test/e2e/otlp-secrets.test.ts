import { expect } from "chai";
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanEnv, runCli, spawnCli } from "../support/cli.js";
import { until } from "../support/net.js";
import { OtlpReceiver } from "../support/otlp-receiver.js";
import { tempDir } from "../support/temp.js";

/**
 * Secrets planted in every place an OTLP setting can hold one: the endpoint's user information
 * and query, header variables, the file's headers and headers_list, malformed headers, and a
 * collector that fails. Every line the real CLI writes, and every error it stops with, is
 * searched for them. Each secret contains MARK, so one search finds any of them.
 */
const MARK = "S3CRET";

/** What a run printed, both streams. */
interface Output {
  code: number | null;
  text: string;
}

/** Everything a secret may turn into on its way to a log: as written, %-encoded, base64 (basic auth). */
function expectNoSecret(output: string, secrets: string[]): void {
  expect(output).not.to.include(MARK);
  for (const secret of secrets) {
    for (const form of [secret, encodeURIComponent(secret), Buffer.from(secret).toString("base64")]) {
      expect(output).not.to.include(form);
    }
  }
}

describe("secrets in OTLP settings (the real CLI)", function () {
  this.timeout(30_000);
  const receivers: OtlpReceiver[] = [];
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
    await Promise.all(receivers.splice(0).map((r) => r.close()));
  });

  const dir = (): string => {
    const d = tempDir("serve-metrics-secrets-");
    writeFileSync(join(d, "config.properties"), "metrics_address=http://127.0.0.1:0\nnumber_of_gpu=0\n");
    return d;
  };

  /**
   * Runs the CLI against a receiver that fails at first (`failMode`), waits for the failing
   * warning, lets the receiver recover, waits for the recovery line and a scrape, then stops it.
   */
  async function runThroughAnOutage(
    rx: OtlpReceiver,
    failMode: "unavailable" | "cut" | "drip",
    args: string[],
    env: NodeJS.ProcessEnv,
  ): Promise<Output> {
    rx.setMode(failMode);
    const child = spawnCli(args, cleanEnv(env));
    children.push(child);
    let text = "";
    child.stdout?.on("data", (d: Buffer) => (text += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (text += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    // Polled on everything printed so far: lines may arrive together in one chunk.
    const seen = async (pattern: RegExp): Promise<RegExpExecArray> => {
      await until(() => pattern.test(text), String(pattern), 20_000);
      return pattern.exec(text) as RegExpExecArray;
    };
    const [, metricsUrl = ""] = await seen(/metrics API listening on (\S+)\n/);
    await seen(/ failing: .*\n/);
    rx.setMode("ok");
    await seen(/ recovered after \d+ failed exports?\n/);
    // The service answers scrapes throughout; its own counters carry no URL.
    const scrape = await fetch(metricsUrl);
    expect(scrape.status).to.equal(200);
    text += await scrape.text();
    child.kill("SIGTERM");
    return { code: await exited, text };
  }

  it("masks the endpoint's user and query and never prints header values, from OTEL_* variables", async () => {
    const rx = await OtlpReceiver.startHttp();
    receivers.push(rx);
    const base = rx.endpoint.replace(/\/v1\/metrics$/, "");
    const password = `pw-${MARK}-userinfo`;
    const query = `${MARK}-query`;
    const header = `${MARK}-env-header`;
    const endpoint = base.replace("http://", `http://collector-user:${password}@`) + `?api_key=${query}`;
    const out = await runThroughAnOutage(
      rx,
      "unavailable",
      ["--ts-config", join(dir(), "config.properties")],
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
        OTEL_EXPORTER_OTLP_HEADERS: `x-api-key=${encodeURIComponent(`Bearer ${header}`)}`,
        OTEL_EXPORTER_OTLP_TIMEOUT: "1000",
        OTEL_METRIC_EXPORT_INTERVAL: "200",
      },
    );
    expect(out.code).to.equal(0);
    const shown = `${base.replace("http://", "http://***@")}/v1/metrics?***`;
    expect(out.text).to.include(`INFO OTLP http/protobuf push to ${shown} every 0.2 s\n`);
    expect(out.text).to.match(new RegExp(`WARN OTLP push to ${shown.replace(/[.*?]/g, "\\$&")} failing: `));
    expectNoSecret(out.text, [password, query, header]);
    // Not vacuous: the secrets were in use, as basic authentication, header and query.
    const received = rx.latest().headers;
    expect(received["x-api-key"]).to.equal(`Bearer ${header}`);
    expect(received.authorization).to.equal(
      `Basic ${Buffer.from(`collector-user:${password}`).toString("base64")}`,
    );
  });

  it("masks them from otel-config.yaml (endpoint, headers, headers_list) with a collector that cuts its answers", async () => {
    const rx = await OtlpReceiver.startHttp();
    receivers.push(rx);
    const d = dir();
    const password = `${MARK}-yaml-password`;
    const token = `${MARK}-yaml-query`;
    const header = `${MARK}-yaml-header`;
    const listed = `${MARK}-yaml-list`;
    const endpoint = rx.endpoint.replace("http://", `http://u:${password}@`) + `?token=${token}`;
    const file = join(d, "otel-config.yaml");
    writeFileSync(
      file,
      [
        'file_format: "1.0"',
        "meter_provider:",
        "  readers:",
        "    - periodic:",
        "        interval: 200",
        "        exporter:",
        "          otlp_http:",
        `            endpoint: "${endpoint}"`,
        "            timeout: 1000",
        `            headers: [{name: x-api-key, value: "${header}"}]`,
        `            headers_list: "x-other=${listed}"`,
        "",
      ].join("\n"),
    );
    const out = await runThroughAnOutage(
      rx,
      "cut",
      ["--ts-config", join(d, "config.properties"), "--otel-config", file],
      {},
    );
    expect(out.code).to.equal(0);
    expect(out.text).to.include("failing: the collector's answer ended before its body was complete");
    expect(out.text).to.include(`push to ${rx.endpoint.replace("http://", "http://***@")}?***`);
    expectNoSecret(out.text, [password, token, header, listed]);
    expect(rx.latest().headers).to.include({ "x-api-key": header, "x-other": listed });
  });

  // Settings that stop the start: the message names the variable or key and the header, never a value.
  const refused: [string, NodeJS.ProcessEnv, string, RegExp][] = [
    [
      "a header written name:value",
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318",
        OTEL_EXPORTER_OTLP_HEADERS: `authorization:Bearer ${MARK}`,
      },
      "",
      /OTEL_EXPORTER_OTLP_HEADERS \(environment\): header "authorization" \(item 1 of 1\) is written name:value/,
    ],
    [
      "an item that is no pair",
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318",
        OTEL_EXPORTER_OTLP_METRICS_HEADERS: `a=1,${MARK}`,
      },
      "",
      /OTEL_EXPORTER_OTLP_METRICS_HEADERS \(environment\): item 2 of 2 is not name=value/,
    ],
    [
      "a header value with a line break",
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318",
        OTEL_EXPORTER_OTLP_HEADERS: `x-api-key=${MARK}%0Ainjected`,
      },
      "",
      /header "x-api-key" has a character in its value that HTTP cannot carry/,
    ],
    [
      "an endpoint that is no URL",
      { OTEL_EXPORTER_OTLP_ENDPOINT: `http://u:${MARK}@127.0.0.1:port?k=${MARK}` },
      "",
      /OTEL_EXPORTER_OTLP_ENDPOINT \(environment\): "http:\/\/\*\*\*@127\.0\.0\.1:port\?\*\*\*" is not an http/,
    ],
    [
      "a malformed headers_list in the file",
      {},
      `            headers_list: "x-api-key:${MARK}"\n`,
      /otlp_http\.headers_list: header "x-api-key" \(item 1 of 1\) is written name:value/,
    ],
    [
      "a file header value with a line break",
      {},
      `            headers: [{name: authorization, value: "Bearer ${MARK}\\r\\n"}]\n`,
      /otlp_http\.headers\[0\]: header "authorization" has a character in its value/,
    ],
    [
      "a file endpoint that is no URL",
      {},
      `            endpoint: "http://u:${MARK}@collector:port/v1/metrics?token=${MARK}"\n`,
      /otlp_http\.endpoint: "http:\/\/\*\*\*@collector:port\/v1\/metrics\?\*\*\*" is not an http/,
    ],
  ];
  for (const [what, env, yaml, reason] of refused) {
    it(`stops the start on ${what} without quoting the secret (exit 2)`, async () => {
      const d = dir();
      const args = ["--ts-config", join(d, "config.properties")];
      if (yaml !== "") {
        const file = join(d, "otel-config.yaml");
        writeFileSync(
          file,
          'file_format: "1.0"\nmeter_provider:\n  readers:\n    - periodic:\n        exporter:\n          otlp_http:\n' +
            yaml,
        );
        args.push("--otel-config", file);
      }
      const { code, stdout, stderr } = await runCli(args, cleanEnv(env));
      expect(code).to.equal(2, stderr);
      expect(stderr).to.match(reason);
      expectNoSecret(stdout + stderr, []);
    });
  }
});
