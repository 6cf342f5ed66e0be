import { expect } from "chai";

import { metricsPayload, parseMetricLine, type MetricLine } from "../../src/sources/metric-line.js";

// TorchServe's documented example line.
const EXAMPLE =
  "[METRICS]PredictionTime.Milliseconds:71.95|#ModelName:mnist,Level:Model|#type:GAUGE|#hostname:test-host,1699061430,6d1726a7-1c0a-4e8b-9f52-0a6c2a1e5b3d";

const EXAMPLE_LINE: MetricLine = {
  name: "PredictionTime",
  unit: "Milliseconds",
  value: 71.95,
  dimensions: { ModelName: "mnist", Level: "Model" },
  type: "gauge",
  hostname: "test-host",
  timestamp: 1699061430,
  requestIds: ["6d1726a7-1c0a-4e8b-9f52-0a6c2a1e5b3d"],
};

/** A line like the example's, with the given fields changed. */
const like = (changes: Partial<MetricLine>): MetricLine => ({ ...EXAMPLE_LINE, ...changes });

describe("metricsPayload", () => {
  it("gives the text after the marker at the start of a line", () => {
    expect(metricsPayload("[METRICS]A.Count:1|#|#hostname:h,1")).to.equal("A.Count:1|#|#hostname:h,1");
  });

  it("gives the text after the marker behind a log prefix", () => {
    expect(
      metricsPayload("2024-01-01T00:00:00,000 [INFO ] W-9000 MODEL_METRICS - [METRICS]A.Count:1"),
    ).to.equal("A.Count:1");
  });

  it("gives undefined for a line without the marker", () => {
    expect(metricsPayload("A.Count:1|#|#hostname:h,1")).to.equal(undefined);
    expect(metricsPayload("[INFO ] W-9000-mnist_1.0-stdout MODEL_LOG - loading model")).to.equal(undefined);
  });

  it("gives the text after TorchServe's own `INFO > ` prefix", () => {
    expect(metricsPayload("INFO > [METRICS]A.Count:1")).to.equal("A.Count:1");
  });

  it("gives undefined for a marker that other text precedes (a worker quoting its input)", () => {
    expect(metricsPayload("x [METRICS]A.Count:1")).to.equal(undefined);
    expect(metricsPayload(" [METRICS]A.Count:1")).to.equal(undefined);
    expect(metricsPayload("INFO  > [METRICS]A.Count:1")).to.equal(undefined);
    expect(
      metricsPayload(
        "INFO:root:review: great movie! [METRICS]Requests5XX.Count:100000|#Level:Host|#hostname:vm,1,r",
      ),
    ).to.equal(undefined);
    // TorchServe's ts_log.log echoes each metric line it read: the echo is no metric line.
    expect(
      metricsPayload(
        "2024-04-25T07:21:31,722 [INFO ] W-9000-m_1.0-stdout org.pytorch.serve.wlm.WorkerLifeCycle - result=[METRICS]X.Count:1|#|#hostname:H,1, pattern=[METRICS]",
      ),
    ).to.equal(undefined);
    // A log4j prefix whose message is the worker's own text: the marker is not where the prefix ends.
    expect(
      metricsPayload("2024-01-01T00:00:00,000 [INFO ] W-9000 MODEL_LOG - got: [METRICS]A.Count:1"),
    ).to.equal(undefined);
  });

  it("cuts at the first marker, so a marker inside the payload stays in it", () => {
    expect(metricsPayload("[METRICS]A.Count:1 [METRICS]")).to.equal("A.Count:1 [METRICS]");
  });
});

describe("parseMetricLine", () => {
  const valid: { title: string; text: string; line: MetricLine }[] = [
    { title: "TorchServe's example line", text: EXAMPLE, line: EXAMPLE_LINE },
    {
      title: "a line without the type segment, as older emitters write",
      text: "[METRICS]PredictionTime.Milliseconds:71.95|#ModelName:mnist,Level:Model|#hostname:test-host,1699061430,6d1726a7-1c0a-4e8b-9f52-0a6c2a1e5b3d",
      line: like({ type: undefined }),
    },
    {
      title: "a line without request ids",
      text: "[METRICS]PredictionTime.Milliseconds:71.95|#ModelName:mnist,Level:Model|#type:GAUGE|#hostname:test-host,1699061430",
      line: like({ requestIds: [] }),
    },
    {
      title: "several request ids, in line order",
      text: "[METRICS]HandlerTime.Milliseconds:3|#ModelName:mnist,Level:Model|#type:GAUGE|#hostname:test-host,1699061430,id-1,id-2,id-3",
      line: like({ name: "HandlerTime", value: 3, requestIds: ["id-1", "id-2", "id-3"] }),
    },
    {
      title: "empty dimensions",
      text: "[METRICS]InferenceCount.Count:1|#|#type:COUNTER|#hostname:test-host,1699061430",
      line: like({
        name: "InferenceCount",
        unit: "Count",
        value: 1,
        dimensions: {},
        type: "counter",
        requestIds: [],
      }),
    },
    {
      title: "empty dimensions and no type",
      text: "[METRICS]InferenceCount.Count:1|#|#hostname:test-host,1699061430",
      line: like({
        name: "InferenceCount",
        unit: "Count",
        value: 1,
        dimensions: {},
        type: undefined,
        requestIds: [],
      }),
    },
    {
      title: "a log4j prefix before the marker",
      text: `2024-01-01T00:00:00,000 [INFO ] W-9000-mnist_1.0-stdout MODEL_METRICS - ${EXAMPLE}`,
      line: EXAMPLE_LINE,
    },
    { title: "no marker (a POSTed line)", text: EXAMPLE.slice("[METRICS]".length), line: EXAMPLE_LINE },
    { title: "a trailing \\r (CRLF line ends)", text: `${EXAMPLE}\r`, line: EXAMPLE_LINE },
    {
      title: "a dimension value holding ':' (split at the first one)",
      text: "[METRICS]Latency.Milliseconds:2|#Endpoint:host:8080/predict,Level:Model|#hostname:h,1",
      line: like({
        name: "Latency",
        value: 2,
        dimensions: { Endpoint: "host:8080/predict", Level: "Model" },
        type: undefined,
        hostname: "h",
        timestamp: 1,
        requestIds: [],
      }),
    },
    {
      title: "dimensions in line order, not sorted",
      text: "[METRICS]X.Count:1|#Zeta:z,Alpha:a,Mid:m|#hostname:h,1",
      line: like({
        name: "X",
        unit: "Count",
        value: 1,
        dimensions: { Zeta: "z", Alpha: "a", Mid: "m" },
        type: undefined,
        hostname: "h",
        timestamp: 1,
        requestIds: [],
      }),
    },
    {
      title: "an empty dimension value",
      text: "[METRICS]X.Count:1|#Level:|#hostname:h,1",
      line: like({
        name: "X",
        unit: "Count",
        value: 1,
        dimensions: { Level: "" },
        type: undefined,
        hostname: "h",
        timestamp: 1,
        requestIds: [],
      }),
    },
    {
      title: "the HISTOGRAM type, in any case",
      text: "[METRICS]Size.Bytes:1024|#Level:Model|#type:histogram|#hostname:h,1",
      line: like({
        name: "Size",
        unit: "Bytes",
        value: 1024,
        dimensions: { Level: "Model" },
        type: "histogram",
        hostname: "h",
        timestamp: 1,
        requestIds: [],
      }),
    },
    {
      title: "a metric name with colons and underscores",
      text: "[METRICS]ts:handler_preprocess.Milliseconds:0.0054836273193359375|#|#hostname:h,1",
      line: like({
        name: "ts:handler_preprocess",
        value: 0.0054836273193359375,
        dimensions: {},
        type: undefined,
        hostname: "h",
        timestamp: 1,
        requestIds: [],
      }),
    },
    {
      title: "a unit with spaces, '/' and '.'",
      text: "[METRICS]Rate.requests per s/gpu.v2:5|#|#hostname:h,1",
      line: like({
        name: "Rate",
        unit: "requests per s/gpu.v2",
        value: 5,
        dimensions: {},
        type: undefined,
        hostname: "h",
        timestamp: 1,
        requestIds: [],
      }),
    },
    {
      title: "a dimension named __proto__ stays a dimension",
      text: "[METRICS]X.Count:1|#__proto__:p|#hostname:h,1",
      line: like({
        name: "X",
        unit: "Count",
        value: 1,
        dimensions: Object.fromEntries([["__proto__", "p"]]),
        type: undefined,
        hostname: "h",
        timestamp: 1,
        requestIds: [],
      }),
    },
    {
      title: "a fractional timestamp",
      text: "[METRICS]X.Count:1|#|#hostname:h,1699061430.25",
      line: like({
        name: "X",
        unit: "Count",
        value: 1,
        dimensions: {},
        type: undefined,
        hostname: "h",
        timestamp: 1699061430.25,
        requestIds: [],
      }),
    },
  ];

  for (const { title, text, line } of valid) {
    it(`parses ${title}`, () => {
      expect(parseMetricLine(text)).to.deep.equal({ ok: true, line });
    });
  }

  it("keeps dimensions in line order", () => {
    const result = parseMetricLine("[METRICS]X.Count:1|#Zeta:z,Alpha:a,Mid:m|#hostname:h,1");
    expect(result.ok && Object.keys(result.line.dimensions)).to.deep.equal(["Zeta", "Alpha", "Mid"]);
  });

  it("keeps a dimension named __proto__ as an own property, not the prototype", () => {
    const result = parseMetricLine("[METRICS]X.Count:1|#__proto__:p|#hostname:h,1");
    expect(result.ok && Object.getPrototypeOf(result.line.dimensions)).to.equal(Object.prototype);
    expect(result.ok && Object.entries(result.line.dimensions)).to.deep.equal([["__proto__", "p"]]);
  });

  describe("values", () => {
    const values: [string, number][] = [
      ["71.95", 71.95],
      ["+3", 3],
      ["-2", -2],
      ["0", 0],
      ["1e3", 1000],
      ["1E-05", 0.00001],
      ["2.5e+2", 250],
      [".5", 0.5],
      ["5.", 5],
      ["007", 7],
    ];
    for (const [text, value] of values) {
      it(`reads ${text} as ${value}`, () => {
        const result = parseMetricLine(`[METRICS]X.Count:${text}|#|#hostname:h,1`);
        expect(result.ok && result.line.value).to.equal(value);
      });
    }

    const notNumbers = [
      "inf",
      "-inf",
      "Infinity",
      "nan",
      "NaN",
      "0x1f",
      "1e999",
      "1,5",
      "1_000",
      "1e",
      "e3",
      ".",
      "-",
      "1.2.3",
      " 1",
      "True",
    ];
    for (const text of notNumbers) {
      it(`rejects the value ${JSON.stringify(text)}`, () => {
        expect(parseMetricLine(`[METRICS]X.Count:${text}|#|#hostname:h,1`)).to.deep.equal({
          ok: false,
          reason: `value ${JSON.stringify(text)} of metric "X" is not a finite number`,
        });
      });
    }
  });

  const invalid: { title: string; text: string; reason: string }[] = [
    {
      title: "an empty line",
      text: "",
      reason:
        "empty metric line; expected <Name>.<Unit>:<value>|#<dims>[|#type:<type>]|#hostname:<host>,<timestamp>[,<request ids>]",
    },
    {
      title: "a marker and nothing else",
      text: "[METRICS]\r",
      reason:
        "empty metric line; expected <Name>.<Unit>:<value>|#<dims>[|#type:<type>]|#hostname:<host>,<timestamp>[,<request ids>]",
    },
    {
      title: "a log line that is no metric",
      text: "loading model mnist",
      reason: 'expected "<Name>.<Unit>:<value>" before the first "|#", got "loading model mnist"',
    },
    {
      title: "a head without unit",
      text: "[METRICS]PredictionTime:71.95|#|#hostname:h,1",
      reason: 'expected "<Name>.<Unit>" before ":<value>", got "PredictionTime"',
    },
    {
      title: "an empty unit",
      text: "[METRICS]PredictionTime.:71.95|#|#hostname:h,1",
      reason: 'metric "PredictionTime" has an empty unit',
    },
    {
      title: "a unit with odd characters",
      text: "[METRICS]PredictionTime.Milli#seconds:71.95|#|#hostname:h,1",
      reason:
        'unit "Milli#seconds" of metric "PredictionTime" may hold only letters, digits, spaces and _ % / . -',
    },
    {
      title: "a metric name with a space (TorchServe's parser takes it)",
      text: "[METRICS]Prediction Time.Milliseconds:71.95|#|#hostname:h,1",
      reason:
        'metric name "Prediction Time" is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)',
    },
    {
      title: "a metric name starting with a digit",
      text: "[METRICS]2XX.Count:1|#|#hostname:h,1",
      reason: 'metric name "2XX" is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)',
    },
    {
      title: "an empty metric name",
      text: "[METRICS].Count:1|#|#hostname:h,1",
      reason: 'metric name "" is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)',
    },
    {
      title: "no value",
      text: "[METRICS]PredictionTime.Milliseconds:|#|#hostname:h,1",
      reason: 'metric "PredictionTime" has no value after ":"',
    },
    {
      title: "the value inf",
      text: "[METRICS]PredictionTime.Milliseconds:inf|#ModelName:mnist|#hostname:h,1",
      reason: 'value "inf" of metric "PredictionTime" is not a finite number',
    },
    {
      title: "no hostname segment",
      text: "[METRICS]PredictionTime.Milliseconds:71.95|#ModelName:mnist,Level:Model",
      reason:
        'missing "|#hostname:<host>,<timestamp>" segment at the end; expected <Name>.<Unit>:<value>|#<dims>[|#type:<type>]|#hostname:<host>,<timestamp>[,<request ids>]',
    },
    {
      title: "only a head",
      text: "[METRICS]PredictionTime.Milliseconds:71.95",
      reason:
        'missing "|#hostname:<host>,<timestamp>" segment at the end; expected <Name>.<Unit>:<value>|#<dims>[|#type:<type>]|#hostname:<host>,<timestamp>[,<request ids>]',
    },
    {
      title: "the hostname segment not last",
      text: "[METRICS]X.Count:1|#|#hostname:h,1|#type:GAUGE",
      reason:
        'missing "|#hostname:<host>,<timestamp>" segment at the end; expected <Name>.<Unit>:<value>|#<dims>[|#type:<type>]|#hostname:<host>,<timestamp>[,<request ids>]',
    },
    {
      title: "no dimensions segment",
      text: "[METRICS]X.Count:1|#hostname:h,1",
      reason: 'missing "|#<dims>" segment before "|#hostname:" (write "|#|#hostname:" when there are none)',
    },
    {
      title: "too many segments",
      text: "[METRICS]X.Count:1|#A:a|#type:GAUGE|#B:b|#hostname:h,1",
      reason:
        '4 "|#" segments, at most 3 expected; expected <Name>.<Unit>:<value>|#<dims>[|#type:<type>]|#hostname:<host>,<timestamp>[,<request ids>]',
    },
    {
      title: "a third segment that is not the type",
      text: "[METRICS]X.Count:1|#A:a|#B:b|#hostname:h,1",
      reason: 'segment "|#B:b" between the dimensions and "|#hostname:" is not "|#type:<type>"',
    },
    {
      title: "an unknown type",
      text: "[METRICS]X.Count:1|#|#type:SUMMARY|#hostname:h,1",
      reason: 'type "SUMMARY" is not COUNTER, GAUGE or HISTOGRAM',
    },
    {
      title: "an empty type",
      text: "[METRICS]X.Count:1|#|#type:|#hostname:h,1",
      reason: 'type "" is not COUNTER, GAUGE or HISTOGRAM',
    },
    {
      title: "a dimension name with a space",
      text: "[METRICS]X.Count:1|#Model Name:mnist|#hostname:h,1",
      reason: 'dimension "Model Name" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)',
    },
    {
      title: "a dimension name starting with a digit",
      text: "[METRICS]X.Count:1|#1Level:Model|#hostname:h,1",
      reason: 'dimension "1Level" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)',
    },
    {
      title: "a dimension without a name",
      text: "[METRICS]X.Count:1|#:mnist|#hostname:h,1",
      reason: 'dimension "" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)',
    },
    {
      title: "a dimension without ':'",
      text: "[METRICS]X.Count:1|#ModelName:mnist,Level|#hostname:h,1",
      reason: 'dimension "Level" has no ":<value>"',
    },
    {
      title: "a duplicate dimension",
      text: "[METRICS]X.Count:1|#Level:Model,Level:Host|#hostname:h,1",
      reason: 'dimension "Level" appears more than once',
    },
    {
      title: "a trailing comma after the dimensions",
      text: "[METRICS]X.Count:1|#Level:Model,|#hostname:h,1",
      reason: 'empty dimension in "Level:Model," (a stray ",")',
    },
    {
      title: "a '|' inside a dimension value",
      text: "[METRICS]X.Count:1|#Level:Mo|del|#hostname:h,1",
      reason: 'stray "|" not followed by "#" in "X.Count:1|#Level:Mo|del|#hostname:h,1"',
    },
    {
      title: "an empty hostname",
      text: "[METRICS]X.Count:1|#|#hostname:,1",
      reason: 'empty hostname in "|#hostname:<host>,<timestamp>"',
    },
    {
      title: "no timestamp",
      text: "[METRICS]X.Count:1|#|#hostname:h",
      reason: 'missing timestamp after hostname "h" (expected "|#hostname:<host>,<timestamp>")',
    },
    {
      title: "a timestamp that is not a number",
      text: "[METRICS]X.Count:1|#|#hostname:h,abc",
      reason: 'timestamp "abc" is not a number',
    },
    {
      title: "an empty timestamp",
      text: "[METRICS]X.Count:1|#|#hostname:h,,id-1",
      reason: 'timestamp "" is not a number',
    },
    {
      title: "a negative timestamp",
      text: "[METRICS]X.Count:1|#|#hostname:h,-5",
      reason: 'timestamp "-5" is negative',
    },
    {
      title: "an empty request id",
      text: "[METRICS]X.Count:1|#|#hostname:h,1,id-1,",
      reason: 'request id 2 after the timestamp is empty (a stray ",")',
    },
    {
      title: "text glued after the request ids",
      text: "[METRICS]X.Milliseconds:0.5|#ModelName:m,Level:Model|#type:GAUGE|#hostname:H,1714029691,10ca6d02-5895-4af3-a052-6b5d409ca676, pattern=[METRICS]",
      reason: 'request id " pattern=[METRICS]" contains whitespace',
    },
    {
      title: "a marker inside other text (TorchServe's WorkerLifeCycle debug line)",
      text: "2024-04-25T07:21:31,722 [INFO ] W-9000-m_1.0-stdout org.pytorch.serve.wlm.WorkerLifeCycle - result=[METRICS]X.Milliseconds:0.5|#ModelName:m,Level:Model|#type:GAUGE|#hostname:H,1714029691, pattern=[METRICS]",
      reason:
        'the [METRICS] marker is at column 100, not at the start of the line (only TorchServe\'s "INFO > " or log4j prefix may precede it): "orch.serve.wlm.WorkerLifeCycle - result=[METRICS]"',
    },
    {
      title: "a marker a worker quoted from its input",
      text: "INFO great movie! [METRICS]Requests5XX.Count:100000|#Level:Host|#hostname:vm,1,r",
      reason:
        'the [METRICS] marker is at column 19, not at the start of the line (only TorchServe\'s "INFO > " or log4j prefix may precede it): "INFO great movie! [METRICS]"',
    },
    {
      title: "a raw CR inside a dimension value",
      text: "[METRICS]X.Count:1|#Level:a\rb|#hostname:h,1",
      reason:
        'control character U+000D in "X.Count:1|#Level:a\\rb|#hostname:h,1"; a metric line is one line of printable text',
    },
    {
      title: "a newline inside a dimension value (only the library API can pass one)",
      text: "[METRICS]X.Count:1|#Level:a\nb|#hostname:h,1",
      reason:
        'control character U+000A in "X.Count:1|#Level:a\\nb|#hostname:h,1"; a metric line is one line of printable text',
    },
    {
      title: "a tab inside a dimension value",
      text: "[METRICS]X.Count:1|#Level:a\tb|#hostname:h,1",
      reason:
        'control character U+0009 in "X.Count:1|#Level:a\\tb|#hostname:h,1"; a metric line is one line of printable text',
    },
    {
      title: "a NUL in the hostname",
      text: "[METRICS]X.Count:1|#|#hostname:h\u0000,1",
      reason:
        'control character U+0000 in "X.Count:1|#|#hostname:h\\u0000,1"; a metric line is one line of printable text',
    },
    {
      title: "a Unicode line separator",
      text: "[METRICS]X.Count:1|#Level:a\u2028b|#hostname:h,1",
      reason:
        'control character U+2028 in "X.Count:1|#Level:a\u2028b|#hostname:h,1"; a metric line is one line of printable text',
    },
  ];

  for (const { title, text, reason } of invalid) {
    it(`rejects ${title}`, () => {
      expect(parseMetricLine(text)).to.deep.equal({ ok: false, reason });
    });
  }

  it("rejects a line longer than 64 KiB, saying how long it is", () => {
    const text = `[METRICS]X.Count:1|#Level:${"a".repeat(64 * 1024)}|#hostname:h,1`;
    expect(parseMetricLine(text)).to.deep.equal({
      ok: false,
      reason: `line is ${text.length} characters long, more than the 65536 allowed`,
    });
  });

  it("takes a line of exactly 64 KiB", () => {
    const head = "[METRICS]X.Count:1|#Level:";
    const tail = "|#hostname:h,1";
    const text = head + "a".repeat(64 * 1024 - head.length - tail.length) + tail;
    expect(text.length).to.equal(64 * 1024);
    expect(parseMetricLine(text).ok).to.equal(true);
  });

  it("cuts long quoted text in a reason and escapes control characters", () => {
    const result = parseMetricLine(`[METRICS]X.Count:${"9".repeat(200)}x|#|#hostname:h,1`);
    expect(result).to.deep.equal({
      ok: false,
      reason: `value "${"9".repeat(80)}…" of metric "X" is not a finite number`,
    });
    const bell = parseMetricLine("[METRICS]X.Count:1\u0007|#|#hostname:h,1");
    expect(bell).to.deep.equal({
      ok: false,
      reason:
        'control character U+0007 in "X.Count:1\\u0007|#|#hostname:h,1"; a metric line is one line of printable text',
    });
  });

  it("takes printable text beyond ASCII in dimension values", () => {
    const result = parseMetricLine("[METRICS]X.Count:1|#Model:résumé-模型 ✓|#hostname:h,1");
    expect(result.ok && result.line.dimensions).to.deep.equal({ Model: "résumé-模型 ✓" });
  });

  it("stays fast on long adversarial input", () => {
    // Inputs that make backtracking patterns explode: long digit runs, many separators.
    const inputs = [
      `[METRICS]X.Count:${"1".repeat(60_000)}x|#|#hostname:h,1`,
      `[METRICS]X.Count:1|#${"a:b,".repeat(16_000)}|#hostname:h,1`,
      `[METRICS]${"|#".repeat(30_000)}`,
      `[METRICS]X.Count:1|#|#hostname:h,1${",id".repeat(20_000)} x`,
      `${"a".repeat(60_000)}.Count:1|#|#hostname:h,1`,
    ];
    const started = performance.now();
    for (let i = 0; i < 20; i++) for (const text of inputs) parseMetricLine(text);
    expect(performance.now() - started).to.be.below(2000);
  });

  it("never throws, whatever the text", () => {
    const pieces = [
      "[METRICS]",
      "|#",
      ":",
      ",",
      ".",
      "type:",
      "hostname:",
      "X",
      "1",
      "e",
      " ",
      "\r",
      "é",
      "|",
    ];
    let seed = 7;
    // MINSTD: small enough to stay exact in a double.
    const next = (): number => (seed = (seed * 48271) % 2147483647);
    for (let i = 0; i < 5000; i++) {
      let text = "";
      for (let n = next() % 12; n > 0; n--) text += pieces[next() % pieces.length] ?? "";
      const result = parseMetricLine(text);
      expect(result.ok ? result.line.name : result.reason).to.be.a("string");
    }
  });
});

describe("parseMetricLine: the hostname segment of TorchServe's metric files", () => {
  const fileLines: { title: string; text: string; line: Partial<MetricLine> }[] = [
    {
      title: "a frontend line (no requestID)",
      text: "Requests2XX.Count:1.0|#Level:Host|#hostname:ip-172-31-11-32,timestamp:1717105563",
      line: {
        name: "Requests2XX",
        unit: "Count",
        value: 1,
        dimensions: { Level: "Host" },
        hostname: "ip-172-31-11-32",
        timestamp: 1717105563,
        requestIds: [],
      },
    },
    {
      title: "a backend line with one request id",
      text: "HandlerTime.ms:71.39|#ModelName:mnist,Level:Model|#hostname:caddc5b40c7b,requestID:6d1726a7-1c0a-4e8b-9f52-0a6c2a1e5b3d,timestamp:1712133883",
      line: {
        name: "HandlerTime",
        unit: "ms",
        value: 71.39,
        dimensions: { ModelName: "mnist", Level: "Model" },
        hostname: "caddc5b40c7b",
        timestamp: 1712133883,
        requestIds: ["6d1726a7-1c0a-4e8b-9f52-0a6c2a1e5b3d"],
      },
    },
    {
      title: "a batch: a comma-separated list of request ids",
      text: "PredictionTime.ms:20.5|#ModelName:m,Level:Model|#hostname:H,requestID:id1,id2,id3,timestamp:1712133883",
      line: { requestIds: ["id1", "id2", "id3"], timestamp: 1712133883 },
    },
    {
      title: "requestID:null",
      text: "HandlerTime.ms:1.0|#ModelName:m,Level:Model|#hostname:H,requestID:null,timestamp:1712133883",
      line: { requestIds: [] },
    },
    {
      title: "timestamp:null (TorchServe ≤0.5)",
      text: "CPUUtilization.Percent:0.0|#Level:Host|#hostname:my-host,timestamp:null",
      line: { hostname: "my-host", timestamp: undefined, requestIds: [] },
    },
    {
      title: "a request id prefixed by an x-request-id-prefix header",
      text: "HandlerTime.ms:1.0|#ModelName:m,Level:Model|#hostname:H,requestID:my prefix:6d17,timestamp:1",
      line: { requestIds: ["my prefix:6d17"] },
    },
    {
      title: "empty dims",
      text: "InferenceCount.Count:1.0|#|#hostname:H,requestID:r,timestamp:1",
      line: { dimensions: {}, requestIds: ["r"] },
    },
  ];
  for (const { title, text, line } of fileLines) {
    it(`parses ${title}`, () => {
      const result = parseMetricLine(text);
      expect(result.ok, JSON.stringify(result)).to.equal(true);
      if (!result.ok) return;
      for (const [key, value] of Object.entries(line)) {
        expect(result.line[key as keyof MetricLine], key).to.deep.equal(value);
      }
    });
  }

  // Java's Double.toString, and the integers TorchServe ≤0.7 passed through.
  const javaValues: [string, number][] = [
    ["1.0", 1],
    ["1", 1],
    ["2704.0", 2704],
    ["4.9299189976E7", 49299189.976],
    ["5.0E-4", 0.0005],
    ["-0.0", -0],
    ["1.2345678E-10", 1.2345678e-10],
  ];
  for (const [text, value] of javaValues) {
    it(`reads Java's ${text} as ${value}`, () => {
      const result = parseMetricLine(`X.Count:${text}|#Level:Host|#hostname:h,timestamp:1`);
      expect(result.ok && result.line.value).to.equal(value);
    });
  }

  const invalid: { title: string; text: string; reason: string }[] = [
    {
      title: "a timestamp that is not last",
      text: "X.Count:1.0|#|#hostname:h,timestamp:1,requestID:r",
      reason: 'expected "timestamp:<t>" last in "|#hostname:h,...", got "requestID:r"',
    },
    {
      title: "no timestamp after the request ids",
      text: "X.Count:1.0|#|#hostname:h,requestID:r",
      reason: 'expected "timestamp:<t>" last in "|#hostname:h,...", got "requestID:r"',
    },
    {
      title: "a field other than requestID before the timestamp",
      text: "X.Count:1.0|#|#hostname:h,color:red,timestamp:1",
      reason: 'timestamp "color:red" is not a number',
    },
    {
      title: "a timestamp that is no number",
      text: "X.Count:1.0|#|#hostname:h,timestamp:yesterday",
      reason: 'timestamp "yesterday" is not a number',
    },
    {
      title: "a negative timestamp",
      text: "X.Count:1.0|#|#hostname:h,timestamp:-5",
      reason: 'timestamp "-5" is negative',
    },
    {
      title: "text glued after the timestamp",
      text: "X.Count:1.0|#|#hostname:h,timestamp:1, pattern=x",
      reason: 'expected "timestamp:<t>" last in "|#hostname:h,...", got " pattern=x"',
    },
  ];
  for (const { title, text, reason } of invalid) {
    it(`rejects ${title}`, () => {
      expect(parseMetricLine(text)).to.deep.equal({ ok: false, reason });
    });
  }
});
