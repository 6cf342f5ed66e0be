import { expect } from "chai";
import fc from "fast-check";

import {
  classifyTorchServeLine,
  metricFileOrigin,
  parseAccessLine,
  type TorchServeFile,
  type TorchServeLine,
} from "../../src/sources/torchserve-line.js";

const T = "2024-05-30T21:46:03,625";
const REQUESTS_2XX = "Requests2XX.Count:1.0|#Level:Host|#hostname:ip-172-31-11-32,timestamp:1717105563";
const HANDLER_TIME =
  "HandlerTime.ms:71.39|#ModelName:mnist,Level:Model|#hostname:caddc5b40c7b,requestID:6d1726a7-1c0a-4e8b-9f52-0a6c2a1e5b3d,timestamp:1712133883";

interface Case {
  title: string;
  text: string;
  hint?: TorchServeFile;
  expected: TorchServeLine;
}

const metric = (payload: string, origin: "ts_metrics" | "model_metrics" | "worker"): TorchServeLine => ({
  kind: "metric",
  payload,
  origin,
});

describe("classifyTorchServeLine", () => {
  const cases: Case[] = [
    // The metric files: `<time> - <metric line>`.
    {
      title: "a ts_metrics.log line",
      text: `${T} - ${REQUESTS_2XX}`,
      hint: "ts_metrics",
      expected: metric(REQUESTS_2XX, "ts_metrics"),
    },
    {
      title: "a model_metrics.log line",
      text: `${T} - ${HANDLER_TIME}`,
      hint: "model_metrics",
      expected: metric(HANDLER_TIME, "model_metrics"),
    },
    {
      title: "a metric-file line with log4j 1's time (TorchServe ≤0.5)",
      text: `2020-12-20 17:36:07,338 - CPUUtilization.Percent:0.0|#Level:Host|#hostname:my-host,timestamp:null`,
      hint: "ts_metrics",
      expected: metric(
        "CPUUtilization.Percent:0.0|#Level:Host|#hostname:my-host,timestamp:null",
        "ts_metrics",
      ),
    },
    {
      title: "a frontend metric without a hint: the frontend's",
      text: `${T} - ${REQUESTS_2XX}`,
      expected: metric(REQUESTS_2XX, "ts_metrics"),
    },
    {
      title: "a backend line without a hint: requestID makes it a backend record",
      text: `${T} - ${HANDLER_TIME}`,
      expected: metric(HANDLER_TIME, "model_metrics"),
    },
    {
      title: "a frontend name with a requestID, without a hint: a backend record (never the frontend's)",
      text: `${T} - Requests2XX.Count:1.0|#Level:Host|#hostname:h,requestID:r,timestamp:1`,
      expected: metric(
        "Requests2XX.Count:1.0|#Level:Host|#hostname:h,requestID:r,timestamp:1",
        "model_metrics",
      ),
    },
    {
      title: "a custom metric without requestID or hint: a backend record",
      text: `${T} - MyMetric.Count:1.0|#ModelName:m|#hostname:h,timestamp:1`,
      expected: metric("MyMetric.Count:1.0|#ModelName:m|#hostname:h,timestamp:1", "model_metrics"),
    },
    {
      title: "the hint deciding over the name: a frontend name in model_metrics.log",
      text: `${T} - ${REQUESTS_2XX}`,
      hint: "model_metrics",
      expected: metric(REQUESTS_2XX, "model_metrics"),
    },
    // The console and ts_log.log: the logger at its place.
    {
      title: "a TS_METRICS console line",
      text: `2024-05-30T21:46:03,626 [INFO ] epollEventLoopGroup-3-2 TS_METRICS - ${REQUESTS_2XX}`,
      expected: metric(REQUESTS_2XX, "ts_metrics"),
    },
    {
      title: "a MODEL_METRICS console line",
      text: `${T} [INFO ] W-9000-mnist_1.0 MODEL_METRICS - ${HANDLER_TIME}`,
      expected: metric(HANDLER_TIME, "model_metrics"),
    },
    {
      title: "a TS_METRICS console line, whatever file the caller names",
      text: `${T} [INFO ] epollEventLoopGroup-3-2 TS_METRICS - ${REQUESTS_2XX}`,
      hint: "model_metrics",
      expected: metric(REQUESTS_2XX, "ts_metrics"),
    },
    {
      title: "an ACCESS_LOG console line",
      text: `${T} [INFO ] epollEventLoopGroup-3-1 ACCESS_LOG - /127.0.0.1:53514 "POST /predictions/mnist HTTP/1.1" 200 118`,
      expected: {
        kind: "access",
        access: { method: "POST", uri: "/predictions/mnist", protocol: "HTTP/1.1", status: 200, ms: 118 },
      },
    },
    {
      title: "a MODEL_LOG line quoting a metric line (a handler logging its input)",
      text: `${T} [INFO ] W-9000-mnist_1.0-stdout MODEL_LOG - ${REQUESTS_2XX}`,
      expected: { kind: "ignored" },
    },
    {
      title: "a MODEL_LOG line quoting a whole TS_METRICS console line",
      text: `${T} [INFO ] W-9000-mnist_1.0-stdout MODEL_LOG - ${T} [INFO ] x TS_METRICS - ${REQUESTS_2XX}`,
      expected: { kind: "ignored" },
    },
    {
      title: "a MODEL_LOG line quoting a metric-file line",
      text: `${T} [INFO ] W-9000-mnist_1.0-stdout MODEL_LOG - ${T} - ${REQUESTS_2XX}`,
      expected: { kind: "ignored" },
    },
    {
      title: "ts_log.log's echo of a worker's [METRICS] line",
      text: `2024-04-25T07:21:31,722 [INFO ] W-9000-mnist_1.0-stdout org.pytorch.serve.wlm.WorkerLifeCycle - result=[METRICS]HandlerTime.Milliseconds:71.39|#ModelName:mnist,Level:Model|#hostname:h,1714029691,r1, pattern=[METRICS]`,
      // No |#type: TorchServe gives the metric its default, COUNTER; the value is not taken from here.
      expected: { kind: "type", name: "HandlerTime", type: "counter" },
    },
    {
      title: "ts_log.log's echo of a typed worker line behind INFO > ",
      text: `2024-04-25T07:21:31,722 [INFO ] W-9000-m_1.0-stdout org.pytorch.serve.wlm.WorkerLifeCycle - result=INFO > [METRICS]ExamplePercentMetric.Percent:50.0|#ModelName:m|#type:HISTOGRAM|#hostname:h,1714029691,r1, pattern=[METRICS]`,
      expected: { kind: "type", name: "ExamplePercentMetric", type: "histogram" },
    },
    {
      title: "a TS_METRICS copy in ts_log.log (counted from ts_metrics.log, never twice)",
      text: `${T} [INFO ] epollEventLoopGroup-3-2 TS_METRICS - ${REQUESTS_2XX}`,
      hint: "ts_log",
      expected: { kind: "ignored" },
    },
    {
      title: "an ACCESS_LOG copy in ts_log.log",
      text: `${T} [INFO ] epollEventLoopGroup-3-2 ACCESS_LOG - /127.0.0.1:53514 "POST /predictions/mnist HTTP/1.1" 200 118`,
      hint: "ts_log",
      expected: { kind: "ignored" },
    },
    {
      title: "an echo in ts_log.log",
      text: `${T} [INFO ] W-9000-m_1.0-stdout org.pytorch.serve.wlm.WorkerLifeCycle - result=[METRICS]C.Count:1.0|#ModelName:m|#type:GAUGE|#hostname:h,1, pattern=[METRICS]`,
      hint: "ts_log",
      expected: { kind: "type", name: "C", type: "gauge" },
    },
    {
      title: "a metric-file line given as ts_log.log's",
      text: `${T} - ${REQUESTS_2XX}`,
      hint: "ts_log",
      expected: { kind: "ignored" },
    },
    {
      title: "an echo whose type is no type",
      text: `2024-04-25T07:21:31,722 [INFO ] W-9000-m_1.0-stdout org.pytorch.serve.wlm.WorkerLifeCycle - result=[METRICS]X.Count:1.0|#ModelName:m|#type:SUMMARY|#hostname:h,1, pattern=[METRICS]`,
      expected: { kind: "ignored" },
    },
    {
      title: "another logger's line",
      text: `${T} [DEBUG] W-9000-mnist_1.0 org.pytorch.serve.wlm.WorkerThread - W-9000-mnist_1.0 State change WORKER_STARTED -> WORKER_MODEL_LOADED`,
      expected: { kind: "ignored" },
    },
    {
      title: "plain text",
      text: "Torchserve version: 0.12.0",
      expected: { kind: "ignored" },
    },
    { title: "an empty line", text: "", hint: "ts_metrics", expected: { kind: "ignored" } },
    // The access log.
    {
      title: "an access_log.log line",
      text: `${T} - /127.0.0.1:53514 "POST /predictions/mnist HTTP/1.1" 200 118`,
      hint: "access_log",
      expected: {
        kind: "access",
        access: { method: "POST", uri: "/predictions/mnist", protocol: "HTTP/1.1", status: 200, ms: 118 },
      },
    },
    {
      title: "an access line without a hint",
      text: `${T} - /10.0.0.7:41000 "GET /ping HTTP/1.1" 200 2`,
      expected: {
        kind: "access",
        access: { method: "GET", uri: "/ping", protocol: "HTTP/1.1", status: 200, ms: 2 },
      },
    },
    {
      title: "a gRPC access line",
      text: `${T} - /127.0.0.1:40772 "gRPC org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions HTTP/2.0" 0 27`,
      hint: "access_log",
      expected: {
        kind: "access",
        access: {
          method: "gRPC",
          uri: "org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions",
          protocol: "HTTP/2.0",
          status: 0,
          ms: 27,
        },
      },
    },
    // Workers' [METRICS] lines, as before.
    {
      title: "a worker's [METRICS] line",
      text: "[METRICS]HandlerTime.Milliseconds:3|#ModelName:m,Level:Model|#hostname:h,1699061430",
      expected: metric(
        "HandlerTime.Milliseconds:3|#ModelName:m,Level:Model|#hostname:h,1699061430",
        "worker",
      ),
    },
    {
      title: "a C++ worker's INFO > [METRICS] line",
      text: "INFO > [METRICS]HandlerTime.Milliseconds:3|#ModelName:m,Level:Model|#hostname:h,1699061430",
      expected: metric(
        "HandlerTime.Milliseconds:3|#ModelName:m,Level:Model|#hostname:h,1699061430",
        "worker",
      ),
    },
    // TorchServe ≤0.7's frontend lines, in today's form.
    {
      title: "≤0.7's worker load time under the worker's name",
      text: `${T} - W-9000-mnist_1.0.ms:3579|#Level:Host|#hostname:h,timestamp:1600000000`,
      hint: "ts_metrics",
      expected: metric(
        "WorkerLoadTime.ms:3579|#WorkerName:W-9000-mnist_1.0,Level:Host|#hostname:h,timestamp:1600000000",
        "ts_metrics",
      ),
    },
    {
      title: "≤0.7's worker load time, no hint",
      text: `${T} - W-9000-mnist_1.0.ms:3579|#Level:Host|#hostname:h,timestamp:1600000000`,
      expected: metric(
        "WorkerLoadTime.ms:3579|#WorkerName:W-9000-mnist_1.0,Level:Host|#hostname:h,timestamp:1600000000",
        "ts_metrics",
      ),
    },
    {
      title: "≤0.7's GPU line with device_id",
      text: `${T} - GPUMemoryUsed.Megabytes:1325|#Level:Host,device_id:0|#hostname:h,timestamp:1`,
      hint: "ts_metrics",
      expected: metric(
        "GPUMemoryUsed.Megabytes:1325|#Level:Host,DeviceId:0|#hostname:h,timestamp:1",
        "ts_metrics",
      ),
    },
    {
      title: "a W- name in model_metrics.log left as it is (a backend line is never renamed)",
      text: `${T} - W-9000-mnist_1.0.ms:3579|#Level:Host|#hostname:h,requestID:r,timestamp:1`,
      hint: "model_metrics",
      expected: metric(
        "W-9000-mnist_1.0.ms:3579|#Level:Host|#hostname:h,requestID:r,timestamp:1",
        "model_metrics",
      ),
    },
    {
      title: "a CRLF line end",
      text: `${T} - ${REQUESTS_2XX}\r`,
      hint: "ts_metrics",
      expected: metric(REQUESTS_2XX, "ts_metrics"),
    },
    // Records that are broken.
    {
      title: "a broken access_log.log line",
      text: `${T} - /127.0.0.1:53514 "POST /predictions/mnist HTTP/1.1" 200`,
      hint: "access_log",
      expected: {
        kind: "malformed",
        reason: 'expected "<status> <ms>" (two integers) after the quoted request, got "200"',
      },
    },
    {
      title: "a broken ACCESS_LOG console line",
      text: `${T} [INFO ] epollEventLoopGroup-3-1 ACCESS_LOG - hello`,
      expected: {
        kind: "malformed",
        reason: 'expected <client> "<method> <uri> <protocol>" <status> <ms>, got "hello"',
      },
    },
    {
      title: "a broken access line without a hint",
      text: `${T} - /127.0.0.1:53514 "POST" 200 1`,
      expected: {
        kind: "malformed",
        reason: 'expected "<method> <uri> <protocol>" between the quotes, got "POST"',
      },
    },
    {
      title: "a line of ts_metrics.log without the layout",
      text: REQUESTS_2XX,
      hint: "ts_metrics",
      expected: {
        kind: "malformed",
        reason: `not in the layout of TorchServe's ts_metrics.log ("<time> - <record>", the time as log4j2's ISO8601 "2024-05-30T21:46:03,625"): ${JSON.stringify(REQUESTS_2XX)}`,
      },
    },
    {
      title: "a Python logging line without a hint (not a record)",
      text: "2024-05-30 21:46:03,625 - root - INFO - loading model",
      expected: { kind: "ignored" },
    },
  ];

  for (const { title, text, hint, expected } of cases) {
    it(`classifies ${title}`, () => {
      expect(classifyTorchServeLine(text, hint)).to.deep.equal(expected);
    });
  }

  it("refuses a TS_METRICS record longer than 64 KiB, saying how long it is", () => {
    const text = `${T} [INFO ] x TS_METRICS - Requests2XX.Count:1.0|#Level:${"a".repeat(65_536)}|#hostname:h,timestamp:1`;
    expect(classifyTorchServeLine(text)).to.deep.equal({
      kind: "malformed",
      reason: `line is ${text.length} characters long, more than the 65536 allowed`,
    });
  });

  it("ignores a MODEL_LOG line of any length (a handler logging a large input)", () => {
    const text = `${T} [INFO ] W-9000-m_1.0-stdout MODEL_LOG - ${"x".repeat(1_000_000)}`;
    expect(classifyTorchServeLine(text)).to.deep.equal({ kind: "ignored" });
  });

  it("never throws, whatever the text and hint", () => {
    const piece = fc.constantFrom(
      T,
      "2020-12-20 17:36:07,338",
      " - ",
      " [INFO ] ",
      "TS_METRICS",
      "MODEL_METRICS",
      "ACCESS_LOG",
      "MODEL_LOG",
      "[METRICS]",
      "|#",
      "hostname:",
      "requestID:",
      "timestamp:",
      ",",
      ":",
      ".",
      '"',
      " ",
      "/127.0.0.1:1",
      "200",
      "W-9000-m_1.0",
      "GPU",
      "device_id:",
      "\r",
      "é",
    );
    const text = fc.oneof(
      fc.array(piece, { maxLength: 14 }).map((p) => p.join("")),
      fc.string(),
    );
    const hint = fc.constantFrom<TorchServeFile | undefined>(
      undefined,
      "ts_metrics",
      "model_metrics",
      "access_log",
    );
    fc.assert(
      fc.property(text, hint, (t, h) => {
        const line = classifyTorchServeLine(t, h);
        expect(["metric", "access", "ignored", "malformed"]).to.include(line.kind);
      }),
      { numRuns: 3000 },
    );
  });

  it("stays fast on long hostile input, with and without a hint", () => {
    // Inputs that make backtracking patterns explode: long runs of one layout part, many separators.
    const inputs = [
      `${T} [INFO ] ${"a".repeat(60_000)}`,
      `${T} [INFO ${" ".repeat(60_000)}`,
      `${T} [INFO ] x ACCESS_LOG - ${' "'.repeat(30_000)}`,
      `${T} - ${'" '.repeat(30_000)}1 1`,
      `${T} - W-1-${".ms:".repeat(15_000)}|#`,
      `${T} - GPU|#${"device_id:0,".repeat(5_000)}|#hostname:h,timestamp:1`,
      `${T} - X.Count:1|#|#hostname:h${",requestID:a".repeat(5_000)}`,
      "2024-05-30T21:46:03,625 ".repeat(2_500),
      `INFO > ${"[METRICS]".repeat(7_000)}`,
    ];
    const started = performance.now();
    for (let i = 0; i < 20; i++) {
      for (const text of inputs) {
        for (const hint of [undefined, "ts_metrics", "access_log"] as const)
          classifyTorchServeLine(text, hint);
      }
    }
    expect(performance.now() - started).to.be.below(2000);
  });

  it("stays linear on random long runs of layout parts (property)", () => {
    // A backtracking pattern is quadratic or worse on such runs: 60k characters would take seconds.
    const head = fc.constantFrom(
      "",
      `${T} - `,
      `${T} [INFO ] x `,
      `${T} [INFO ] x TS_METRICS - `,
      `${T} [INFO ] x ACCESS_LOG - `,
    );
    const unit = fc.constantFrom(
      " ",
      "a",
      '"',
      ' "',
      '" ',
      "|#",
      ",",
      ":",
      ".",
      "1 ",
      "[METRICS]",
      "W-1-",
      "timestamp:",
      "] ",
    );
    const hostile = fc.record({
      head,
      unit,
      n: fc.integer({ min: 1_000, max: 30_000 }),
      tail: fc.constantFrom("", " 200 1", "|#hostname:h,timestamp:1", "x"),
    });
    const hint = fc.constantFrom<TorchServeFile | undefined>(
      undefined,
      "ts_metrics",
      "model_metrics",
      "access_log",
    );
    let elapsed = 0;
    fc.assert(
      fc.property(hostile, hint, ({ head, unit, n, tail }, h) => {
        const text = head + unit.repeat(n) + tail;
        const started = performance.now();
        classifyTorchServeLine(text, h);
        elapsed += performance.now() - started;
      }),
      { numRuns: 300 },
    );
    expect(elapsed).to.be.below(3000);
  });
});

describe("metricFileOrigin", () => {
  it("takes a requestID as the mark of a backend record", () => {
    expect(
      metricFileOrigin("CPUUtilization.Percent:1.0|#Level:Host|#hostname:h,requestID:r,timestamp:1"),
    ).to.equal("model_metrics");
  });

  it("takes each TorchServe frontend name without requestID as the frontend's", () => {
    for (const name of [
      "Requests5XX",
      "ts_queue_latency_microseconds",
      "WorkerLoadTime",
      "GPUUtilization",
      "DiskAvailable",
    ]) {
      expect(metricFileOrigin(`${name}.Count:1.0|#Level:Host|#hostname:h,timestamp:1`), name).to.equal(
        "ts_metrics",
      );
    }
  });

  it("takes anything else as a backend record", () => {
    expect(metricFileOrigin("HandlerTime.ms:1.0|#ModelName:m,Level:Model|#hostname:h,timestamp:1")).to.equal(
      "model_metrics",
    );
    expect(metricFileOrigin("serve_queue_depth.Count:1.0|#model_name:m|#hostname:h,timestamp:1")).to.equal(
      "model_metrics",
    );
    expect(metricFileOrigin("garbage")).to.equal("model_metrics");
  });
});

describe("parseAccessLine", () => {
  it("keeps a URI with its query, and one holding spaces and quotes whole", () => {
    expect(parseAccessLine('/127.0.0.1:1 "POST /predictions/m/2.0?x=1 HTTP/1.1" 503 4')).to.deep.equal({
      method: "POST",
      uri: "/predictions/m/2.0?x=1",
      protocol: "HTTP/1.1",
      status: 503,
      ms: 4,
    });
    expect(parseAccessLine('/127.0.0.1:1 "GET /a "b" c HTTP/1.1" 404 0')).to.deep.equal({
      method: "GET",
      uri: '/a "b" c',
      protocol: "HTTP/1.1",
      status: 404,
      ms: 0,
    });
  });

  it("takes the bare address TorchServe prints for a null client, and an IPv6 one", () => {
    expect(parseAccessLine('127.0.0.1 "GET /ping HTTP/1.1" 200 1')).to.have.property("status", 200);
    expect(parseAccessLine('/[0:0:0:0:0:0:0:1]:5000 "GET /ping HTTP/1.1" 200 1')).to.have.property(
      "uri",
      "/ping",
    );
  });

  it("keeps a negative time as printed (the clock went back)", () => {
    expect(parseAccessLine('/1.2.3.4:5 "POST /predictions/m HTTP/1.1" 200 -3')).to.have.property("ms", -3);
  });

  const broken: [string, string][] = [
    [
      '"POST /p HTTP/1.1" 200 1',
      'expected <client> "<method> <uri> <protocol>" <status> <ms>, got "\\"POST /p HTTP/1.1\\" 200 1"',
    ],
    [
      '/1.2.3.4:5 "POST /p HTTP/1.1" ok 1',
      'expected "<status> <ms>" (two integers) after the quoted request, got "ok 1"',
    ],
    [
      '/1.2.3.4:5 "POST /p HTTP/1.1" 2000 1',
      'expected "<status> <ms>" (two integers) after the quoted request, got "2000 1"',
    ],
    ['/1.2.3.4:5 "POST /p" 200 1', 'expected "<method> <uri> <protocol>" between the quotes, got "POST /p"'],
    ['a b "POST /p HTTP/1.1" 200 1', 'client address "a b" holds a space'],
  ];
  for (const [text, reason] of broken) {
    it(`refuses ${JSON.stringify(text)}`, () => {
      expect(parseAccessLine(text)).to.equal(reason);
    });
  }
});
