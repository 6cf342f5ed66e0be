import { expect } from "chai";
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import {
  handleMetricLines,
  REPORTED_REJECTIONS,
  type MetricLinesDeps,
  type MetricLinesReport,
} from "../../src/server/metric-lines-handler.js";
import type { Reply } from "../../src/server/json-error.js";
import { parseMetricLine } from "../../src/sources/metric-line.js";
import type { MemoryLogger } from "../../src/log.js";
import type { MetricsService } from "../../src/service.js";
import { request } from "../support/http.js";
import { until } from "../support/net.js";
import { startTestService } from "../support/service.js";

const GOOD =
  "[METRICS]HandlerTime.Milliseconds:5|#ModelName:mnist,Level:Model|#hostname:worker-host,1699061430";
const OF_ABORTED_UPLOAD =
  "[METRICS]HandlerTime.Milliseconds:7|#ModelName:aborted,Level:Model|#hostname:worker-host,1699061430";

/** `count` one-character lines: each is a malformed metric line. */
function garbage(count: number): string {
  return "x\n".repeat(count);
}

/** The value of the sample whose line starts with `prefix`, 0 when there is none. */
function sample(text: string, prefix: string): number {
  const line = text.split("\n").find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/**
 * Opens a raw connection and starts a POST whose body is announced longer than what is sent.
 * Resolves once the server has answered `100 Continue`, which it does as it hands the request to
 * its handler, so the handler is then waiting for the rest of the body.
 */
async function startUpload(port: number, path: string): Promise<Socket> {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => undefined); // the tests reset it on purpose
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n`);
  await new Promise<void>((resolve) => socket.once("data", () => resolve()));
  await new Promise<void>((resolve) => socket.write(`${OF_ABORTED_UPLOAD}\n`, () => resolve()));
  return socket;
}

describe("handleMetricLines", () => {
  let server: Server;
  let port: number;
  let replies: (Reply | undefined)[];
  let applied: string[];
  let onApply: () => void;
  const deps: MetricLinesDeps = {
    maxLineBytes: 8 * 1024 * 1024,
    // The real parser stands in for the ingest: the handler's part is slicing and reporting.
    ingest: {
      apply: (text) => {
        applied.push(text);
        onApply();
        const parsed = parseMetricLine(text);
        return parsed.ok ? { ok: true } : { ok: false, reason: parsed.reason };
      },
    },
  };

  beforeEach(async () => {
    replies = [];
    applied = [];
    onApply = () => undefined;
    server = createServer((req, res) => {
      void handleMetricLines(deps, req).then((reply) => {
        replies.push(reply);
        if (reply === undefined) return;
        res.writeHead(reply.status, reply.headers);
        res.end(reply.body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterEach(() => {
    server.closeAllConnections();
    server.close();
  });

  it("lets timers run while it applies a big body, not only before and after", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const ticksAtApply: number[] = [];
    onApply = () => ticksAtApply.push(ticks);
    try {
      const res = await request(`http://127.0.0.1:${port}/metric-lines`, {
        method: "POST",
        body: garbage(1_000_000),
      });
      expect(res.status).to.equal(200);
    } finally {
      clearInterval(timer);
    }
    expect(ticksAtApply).to.have.length(1_000_000);
    // Applied in one synchronous loop, the first and the last line would see the same count.
    expect((ticksAtApply.at(-1) ?? 0) - (ticksAtApply[0] ?? 0)).to.be.at.least(5);
  });

  it("lists the first rejections with line numbers and reasons and counts them all", async () => {
    const lines = [GOOD, "x", "", GOOD, ...Array.from({ length: 500 }, () => "y")];
    const res = await request(`http://127.0.0.1:${port}/metric-lines`, {
      method: "POST",
      body: lines.join("\n"),
    });
    const report = JSON.parse(res.body) as MetricLinesReport;
    expect(report.accepted).to.equal(2);
    expect(report.rejected_count).to.equal(501);
    expect(report.rejected).to.have.length(REPORTED_REJECTIONS);
    // Blank lines are skipped but keep their number, so the numbers point into the body.
    expect(report.rejected.slice(0, 3).map((r) => r.line)).to.deep.equal([2, 5, 6]);
    expect(report.rejected[0]?.reason).to.include("x");
  });

  it("keeps the reply small whatever the body: a million rejected lines give a reply of a few KiB", async () => {
    const res = await request(`http://127.0.0.1:${port}/metric-lines`, {
      method: "POST",
      body: garbage(1_000_000),
    });
    const report = JSON.parse(res.body) as MetricLinesReport;
    expect(report.rejected_count).to.equal(1_000_000);
    expect(report.rejected).to.have.length(REPORTED_REJECTIONS);
    expect(res.body.length).to.be.below(64 * 1024);
  });

  it("applies nothing and resolves undefined when the client goes away mid-upload", async () => {
    const socket = await startUpload(port, "/metric-lines");
    socket.resetAndDestroy();
    await until(() => replies.length === 1, "the handler to finish");
    expect(replies).to.deep.equal([undefined]);
    expect(applied).to.deep.equal([]);
  });
});

describe("POST /metric-lines in the service", function () {
  this.timeout(60_000);
  let service: MetricsService;
  let logger: MemoryLogger;
  let lines: string;
  let scrapeUrl: string;

  beforeEach(async () => {
    let url: string;
    ({ service, logger, url } = await startTestService({
      enableInferenceApi: true,
      inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
    }));
    lines = `${service.inferenceUrl ?? ""}/metric-lines`;
    scrapeUrl = url;
  });
  afterEach(() => service.stop());

  const rejectedSoFar = async (): Promise<number> =>
    sample(
      (await request(scrapeUrl)).body,
      'serve_metric_lines_rejected_total{source="http",reason="malformed",',
    );

  it("answers GET /metrics while it applies a big body, with the body part applied", async () => {
    const total = 500_000;
    const posted = request(lines, { method: "POST", body: garbage(total) });
    let seen = 0;
    await until(async () => (seen = await rejectedSoFar()) > 0, "the first rejected lines", 30_000);
    // A scrape answered only before or after the body was applied would see 0 or all of it.
    expect(seen).to.be.below(total);
    const report = JSON.parse((await posted).body) as MetricLinesReport;
    expect(report.rejected_count).to.equal(total);
    expect(await rejectedSoFar()).to.equal(total);
  });

  it("cuts long reasons in the reply", async () => {
    const undeclared = `[METRICS]${"N".repeat(2000)}.Count:1|#Level:Model|#hostname:h,1699061430`;
    const res = await request(lines, { method: "POST", body: undeclared });
    const [rejection] = (JSON.parse(res.body) as MetricLinesReport).rejected;
    expect(rejection?.reason).to.include("NNN");
    expect(rejection?.reason.length).to.be.at.most(301);
  });

  for (const [how, close] of [
    ["resets the connection", (s: Socket) => s.resetAndDestroy()],
    ["closes its side of the connection", (s: Socket) => s.end()],
  ] as const) {
    it(`counts no response, applies nothing and logs no error when a client ${how} mid-upload`, async () => {
      const port = Number(new URL(lines).port);
      close(await startUpload(port, "/metric-lines"));
      // A whole request after it: once that is answered, the aborted one has been handled too.
      const res = await request(lines, { method: "POST", body: GOOD });
      expect(res.status).to.equal(200);
      const text = await service.scrape(["Requests2XX", "Requests4XX", "Requests5XX", "HandlerTime"]);
      expect(sample(text, "Requests2XX{")).to.equal(1);
      expect(sample(text, "Requests4XX{")).to.equal(0);
      expect(sample(text, "Requests5XX{")).to.equal(0);
      expect(text).to.include('ModelName="mnist"').and.not.to.include('ModelName="aborted"');
      expect(logger.lines.filter((l) => l.startsWith("ERROR"))).to.deep.equal([]);
    });
  }
});
