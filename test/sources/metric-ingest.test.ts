import { expect } from "chai";
import fc from "fast-check";
import { spawnSync } from "node:child_process";
import { parseCatalog } from "../../src/catalog/load.js";
import type { MetricsFormat } from "../../src/config/types.js";
import type { LineSource } from "../../src/sources/metric-ingest.js";
import { createLineHarness, metricLineTextArbitrary, type LineHarness } from "../support/metric-lines.js";
import { requireTool } from "../support/tools.js";

const SOURCES: readonly LineSource[] = ["worker", "file", "http"];
const FORMATS: readonly MetricsFormat[] = ["torchserve", "otel"];

/** The value of one sample line of the scrape, or undefined when there is none. */
function sample(text: string, line: string): number | undefined {
  const found = text.split("\n").find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

/** serve_metric_lines_rejected_total for one source and reason, 0 when absent (either naming). */
function rejected(text: string, source: LineSource, reason: string): number {
  const found = text
    .split("\n")
    .find(
      (l) =>
        l.startsWith("serve_metric_lines_rejected_total{") &&
        l.includes(`source="${source}"`) &&
        l.includes(`reason="${reason}"`),
    );
  return found === undefined ? 0 : Number(found.slice(found.lastIndexOf(" ") + 1));
}

/** promtool's parse errors for an exposition (its lint remarks on TorchServe's names are not errors). */
function parseErrors(promtool: string, text: string): string[] {
  const run = spawnSync(promtool, ["check", "metrics"], { input: text, encoding: "utf8" });
  return `${run.stdout}${run.stderr}`.split("\n").filter((l) => /error/i.test(l));
}

/**
 * The scrape's families other than the model metrics and the rejected-lines counter, as text.
 * Families are told apart by their HELP line: its name in TorchServe naming, the description
 * (`<catalog name> (<unit>)`) in OTel naming.
 */
function nonModelFamilies(h: LineHarness, text: string, format: MetricsFormat): string {
  const isOther = (family: string): boolean => {
    const def = h.telemetry.recorder.definition(family);
    return (
      def !== undefined && def.section !== "model_metrics" && family !== "serve_metric_lines_rejected_total"
    );
  };
  let out = "";
  let keep = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("# HELP ")) keep = isOther(line.split(" ")[format === "torchserve" ? 2 : 3] ?? "");
    // Blank lines end the text: which family they follow depends on what was registered last.
    if (keep && line !== "") out += `${line}\n`;
  }
  return out;
}

const MODEL_LINE = "[METRICS]HandlerTime.ms:5|#ModelName:m,Level:Model|#hostname:w,1699061430";

describe("MetricLineIngest", () => {
  describe("the marker", () => {
    it("applies a line whose marker starts it, or follows TorchServe's INFO > or log4j prefix", async () => {
      const h = createLineHarness();
      expect(h.ingest.apply(MODEL_LINE, "worker")).to.deep.equal({ ok: true });
      expect(h.ingest.apply(`INFO > ${MODEL_LINE.replace(":5|", ":6|")}`, "worker")).to.deep.equal({
        ok: true,
      });
      expect(
        h.ingest.apply(
          `2024-01-01T00:00:00,001 [INFO ] W-9000-m_1.0-stdout MODEL_LOG - ${MODEL_LINE.replace(":5|", ":7|")}`,
          "file",
        ),
      ).to.deep.equal({ ok: true });
      expect(sample(await h.scrape(), 'HandlerTime{ModelName="m",Level="Model",Hostname="w",}')).to.equal(7);
    });

    for (const source of SOURCES) {
      it(`refuses, from ${source}, a line that only quotes the marker inside other text, and counts it`, async () => {
        const h = createLineHarness();
        const outcome = h.ingest.apply(`INFO handler: review: great movie! ${MODEL_LINE}`, source);
        expect(outcome.ok).to.equal(false);
        const text = await h.scrape();
        expect(text).not.to.match(/^HandlerTime\{/m);
        expect(rejected(text, source, "malformed")).to.equal(1);
      });
    }
  });

  describe("what a line may write", () => {
    const forged = [
      "[METRICS]Requests5XX.Count:100000|#Level:Host|#hostname:vm,1,r",
      "[METRICS]Requests2XX.Count:1|#Level:Host|#type:COUNTER|#hostname:vm,1",
      "[METRICS]ts_inference_requests_total.Count:5000|#model_name:m,model_version:default|#hostname:vm,1",
      "[METRICS]WorkerLoadTime.Milliseconds:1|#WorkerName:W-1-fake_1.0,Level:Host|#hostname:vm,1",
      "[METRICS]CPUUtilization.Percent:99|#Level:Host|#hostname:vm,1",
      "[METRICS]serve_queue_depth.Count:7|#model_name:m|#hostname:vm,1",
      "[METRICS]serve_request_duration_seconds.Seconds:1|#model_name:m,model_version:1|#hostname:vm,1",
      "[METRICS]serve_metric_lines_rejected_total.Count:9|#source:http,reason:malformed|#hostname:h,1",
    ];
    for (const source of SOURCES) {
      for (const autoDetect of [false, true]) {
        it(`refuses frontend, system and serve_* metrics from ${source} (auto-detect ${autoDetect ? "on" : "off"}), counted as forbidden`, async () => {
          const h = createLineHarness({ autoDetect });
          for (const line of forged) expect(h.ingest.apply(line, source).ok, line).to.equal(false);
          expect(h.events.map((e) => e.definition.name)).to.deep.equal(
            forged.map(() => "serve_metric_lines_rejected_total"),
          );
          const text = await h.scrape();
          expect(rejected(text, source, "forbidden")).to.equal(forged.length);
          expect(text).not.to.match(
            /^(Requests|ts_inference|WorkerLoadTime|CPUUtilization|serve_queue_depth|serve_request_duration)/m,
          );
        });
      }
    }

    it("refuses a frontend metric's name even where a custom catalog dropped it, auto-detect on", async () => {
      const catalog = parseCatalog(
        "model_metrics:\n  gauge:\n    - { name: HandlerTime, unit: ms, dimensions: [ModelName, Level] }\n",
        "custom.yaml",
      );
      const h = createLineHarness({ catalog, autoDetect: true });
      const outcome = h.ingest.apply(
        "[METRICS]WorkerLoadTime.Milliseconds:1|#Level:Host|#hostname:vm,1",
        "worker",
      );
      expect(outcome.ok).to.equal(false);
      expect(h.telemetry.families.map((f) => f.name)).not.to.include("WorkerLoadTime");
      expect(rejected(await h.scrape(), "worker", "forbidden")).to.equal(1);
    });

    it("lets a caller grant more per call: a permission that allows frontend metrics writes them", async () => {
      const h = createLineHarness();
      const line = "[METRICS]Requests2XX.Count:3|#Level:Host|#hostname:vm,1";
      expect(h.ingest.apply(line, "file").ok).to.equal(false);
      expect(h.ingest.apply(line, "file", (def) => def.section === "ts_metrics")).to.deep.equal({ ok: true });
      expect(sample(await h.scrape(), 'Requests2XX{Level="Host",Hostname="vm",}')).to.equal(3);
    });
    it("asks the permission of a metric a line would create: one that refuses model metrics auto-detects nothing", async () => {
      const h = createLineHarness({ autoDetect: true });
      const before = h.telemetry.families.length;
      const frontendOnly = (def: { section: string }) => def.section === "ts_metrics";
      expect(h.ingest.apply("[METRICS]Fresh.Count:1|#|#hostname:h,1", "file", frontendOnly).ok).to.equal(
        false,
      );
      expect(h.telemetry.families).to.have.length(before);
      expect(rejected(await h.scrape(), "file", "forbidden")).to.equal(1);
    });
  });

  it("cuts a long name in the reason and the log to a short prefix", () => {
    const h = createLineHarness({ autoDetect: true });
    const outcome = h.ingest.apply(`[METRICS]_${"n".repeat(60_000)}.Count:1|#|#hostname:h,1`, "http");
    expect(outcome.ok).to.equal(false);
    expect(!outcome.ok && outcome.reason.length).to.be.below(200);
    expect(h.logger.lines.every((l) => l.length < 600)).to.equal(true);
  });

  describe("names and labels the exposition reserves", () => {
    const reserved = [
      { title: "__name__", line: "[METRICS]Auto.Count:1|#__name__:x|#hostname:h,1" },
      { title: "a __-prefixed label", line: "[METRICS]Auto.Count:1|#__meta:x|#hostname:h,1" },
      { title: "le on a histogram", line: "[METRICS]Auto.ms:1|#le:5|#type:HISTOGRAM|#hostname:h,1" },
      { title: "quantile", line: "[METRICS]Auto.Count:1|#quantile:0.5|#hostname:h,1" },
      {
        title: "the series cap's overflow label",
        line: "[METRICS]Auto.Count:1|#otel_metric_overflow:true|#hostname:h,1",
      },
      {
        title: "two labels OTel naming renders alike",
        line: "[METRICS]Auto.Count:1|#a__b:1,a_b:2|#hostname:h,1",
      },
    ];
    for (const { title, line } of reserved) {
      it(`refuses to auto-detect a metric with ${title}, registering nothing`, async () => {
        const h = createLineHarness({ autoDetect: true });
        const before = h.telemetry.families.length;
        expect(h.ingest.apply(line, "http").ok).to.equal(false);
        expect(h.telemetry.families).to.have.length(before);
        expect(rejected(await h.scrape(), "http", "invalid")).to.equal(1);
      });
    }

    it("takes le as a gauge's label, where it means nothing special", () => {
      const h = createLineHarness({ autoDetect: true });
      expect(h.ingest.apply("[METRICS]Auto.Count:1|#le:5|#hostname:h,1", "http")).to.deep.equal({ ok: true });
    });

    it("refuses a reserved label on an already registered metric too", () => {
      const h = createLineHarness({ autoDetect: true });
      expect(h.ingest.apply("[METRICS]Auto.ms:1|#Model:m|#type:HISTOGRAM|#hostname:h,1", "http").ok).to.equal(
        true,
      );
      expect(h.ingest.apply("[METRICS]Auto.ms:1|#le:5|#hostname:h,1", "http").ok).to.equal(false);
    });

    for (const format of FORMATS) {
      describe(`sample names (metrics_format=${format})`, () => {
        const clashes = [
          {
            title: "a serve_request_duration_seconds sample",
            lines: ["[METRICS]serve_request_duration_seconds_bucket.Count:1|#|#hostname:h,1"],
          },
          {
            title: "serve_request_duration_seconds_count",
            lines: ["[METRICS]serve_request_duration_seconds_count.Count:1|#|#hostname:h,1"],
          },
          {
            title: "an auto-detected histogram's _count",
            lines: [
              "[METRICS]HistA.ms:1|#|#type:HISTOGRAM|#hostname:h,1",
              "[METRICS]HistA_count.Count:1|#|#hostname:h,1",
            ],
          },
          {
            title:
              "a histogram named like another histogram's _count (a parser reads its HELP as the other's)",
            lines: ["[METRICS]serve_request_duration_seconds_count.ms:1|#|#type:HISTOGRAM|#hostname:h,1"],
          },
          {
            title: "a histogram whose _sum is an existing gauge",
            lines: [
              "[METRICS]HistB_sum.Count:1|#|#hostname:h,1",
              "[METRICS]HistB.ms:1|#|#type:HISTOGRAM|#hostname:h,1",
            ],
          },
        ];
        for (const { title, lines } of clashes) {
          it(`refuses to auto-detect a name that renders ${title}`, async () => {
            const h = createLineHarness({ format, autoDetect: true });
            const outcomes = lines.map((l) => h.ingest.apply(l, "worker"));
            expect(outcomes.at(-1)?.ok).to.equal(false);
            expect(outcomes.slice(0, -1).every((o) => o.ok)).to.equal(true);
            const text = await h.scrape();
            expect(rejected(text, "worker", "invalid")).to.equal(1);
          });
        }

        it("keeps the exposition parseable when OTel naming would render two families alike", async function () {
          const promtool = requireTool(this, "promtool");
          const h = createLineHarness({ format, autoDetect: true });
          for (const line of [
            "[METRICS]Foo.Count:1|#|#type:COUNTER|#hostname:h,1",
            "[METRICS]FooTotal.Count:2|#|#hostname:h,1",
            "[METRICS]foo_total.Count:3|#|#hostname:h,1",
            "[METRICS]Bar.ms:1|#|#type:HISTOGRAM|#hostname:h,1",
            "[METRICS]BarCount.Count:1|#|#hostname:h,1",
            "[METRICS]bar__count.Count:1|#|#hostname:h,1",
            "[METRICS]ServeRequestDurationCount.Count:1|#|#hostname:h,1",
          ]) {
            expect(h.ingest.apply(line, "worker"), line).to.deep.equal({ ok: true });
          }
          expect(parseErrors(promtool, await h.scrape())).to.deep.equal([]);
        });
      });
    }
  });

  describe("label values", () => {
    it("applies a label value of max_label_value_length characters and refuses a longer one as oversized", async () => {
      const h = createLineHarness({ maxLabelValueLength: 16 });
      const at = (value: string, host = "h") =>
        `[METRICS]HandlerTime.ms:1|#ModelName:${value},Level:Model|#hostname:${host},1`;
      expect(h.ingest.apply(at("m".repeat(16)), "http")).to.deep.equal({ ok: true });
      expect(h.ingest.apply(at("m".repeat(17)), "http").ok).to.equal(false);
      expect(h.ingest.apply(at("m", "h".repeat(17)), "http").ok).to.equal(false);
      const text = await h.scrape();
      expect(rejected(text, "http", "oversized")).to.equal(2);
      expect(text.match(/^HandlerTime\{/gm)).to.have.length(1);
    });

    it("defaults to 1024 characters", () => {
      const h = createLineHarness();
      const at = (n: number) =>
        `[METRICS]HandlerTime.ms:1|#ModelName:${"m".repeat(n)},Level:Model|#hostname:h,1`;
      expect(h.ingest.apply(at(1024), "http").ok).to.equal(true);
      expect(h.ingest.apply(at(1025), "http").ok).to.equal(false);
    });

    for (const [name, char] of [
      ["CR", "\r"],
      ["LF", "\n"],
      ["tab", "\t"],
      ["NUL", "\u0000"],
      ["ESC", "\u001b"],
      ["NEL", "\u0085"],
    ] as const) {
      it(`refuses a raw ${name} in a label value, counted as malformed`, async () => {
        const h = createLineHarness();
        expect(
          h.ingest.apply(`[METRICS]HandlerTime.ms:1|#ModelName:a${char}b,Level:Model|#hostname:h,1`, "file")
            .ok,
        ).to.equal(false);
        const text = await h.scrape();
        expect(text).not.to.match(/^HandlerTime\{/m);
        expect(rejected(text, "file", "malformed")).to.equal(1);
      });
    }
  });

  for (const format of FORMATS) {
    it(`treats names of Object.prototype's members as plain names (${format})`, async function () {
      const promtool = requireTool(this, "promtool");
      const h = createLineHarness({ format, autoDetect: true });
      expect(
        h.ingest.apply("[METRICS]Proto.constructor:1|#constructor:a,toString:b|#hostname:h,1", "http"),
      ).to.deep.equal({
        ok: true,
      });
      // A later line without those dimensions lacks them: it must not find the prototype's functions.
      expect(h.ingest.apply("[METRICS]Proto.Count:2|#|#hostname:h,1", "http").ok).to.equal(false);
      expect(h.ingest.apply("[METRICS]constructor.Count:3|#|#hostname:h,1", "http")).to.deep.equal({
        ok: true,
      });
      const text = await h.scrape();
      expect(text).not.to.include("native code");
      expect(rejected(text, "http", "invalid")).to.equal(1);
      expect(parseErrors(promtool, text)).to.deep.equal([]);
    });
  }

  describe("values that accumulate", () => {
    it("refuses a counter increment that could make the total infinite, keeping the counter finite", async () => {
      const h = createLineHarness({ autoDetect: true });
      expect(h.ingest.apply("[METRICS]Big.Count:5|#|#type:COUNTER|#hostname:h,1", "http").ok).to.equal(true);
      expect(h.ingest.apply("[METRICS]Big.Count:1e308|#|#type:COUNTER|#hostname:h,1", "http").ok).to.equal(
        false,
      );
      expect(h.ingest.apply("[METRICS]Big.Count:1e308|#|#type:COUNTER|#hostname:h,1", "http").ok).to.equal(
        false,
      );
      const text = await h.scrape();
      expect(sample(text, 'Big{Hostname="h",}')).to.equal(5);
      expect(rejected(text, "http", "invalid")).to.equal(2);
    });

    it("refuses a histogram observation that could make its sum infinite; a gauge takes any finite value", async () => {
      const h = createLineHarness({ autoDetect: true });
      expect(h.ingest.apply("[METRICS]Hist.ms:-1e308|#|#type:HISTOGRAM|#hostname:h,1", "http").ok).to.equal(
        false,
      );
      expect(h.ingest.apply("[METRICS]Gauge.ms:1e308|#|#type:GAUGE|#hostname:h,1", "http").ok).to.equal(true);
      expect(h.ingest.apply("[METRICS]Gauge.ms:1e308|#|#type:GAUGE|#hostname:h,1", "http").ok).to.equal(true);
      const text = await h.scrape();
      expect(sample(text, 'Gauge{Hostname="h",}')).to.equal(1e308);
      expect(text).not.to.match(/^Hist_sum/m);
    });
  });

  describe("bookkeeping", () => {
    it("logs the first 10 undeclared names once each, cut short, and then only counts", async () => {
      const h = createLineHarness();
      for (let i = 0; i < 500; i++) {
        const name = `U${i}_${"x".repeat(1000)}`;
        h.ingest.apply(`[METRICS]${name}.Count:1|#|#hostname:h,1`, "http");
        h.ingest.apply(`[METRICS]${name}.Count:1|#|#hostname:h,1`, "http");
      }
      expect(h.logger.lines).to.have.length(11);
      expect(h.logger.lines.every((l) => l.length < 300)).to.equal(true);
      expect(h.logger.lines.at(-1)).to.include("further undeclared metrics are counted");
      expect(rejected(await h.scrape(), "http", "undeclared")).to.equal(1000);
    });

    it("auto-detects at most maxAutoDetected metrics, then counts further names as undeclared", async () => {
      const h = createLineHarness({ autoDetect: true, maxAutoDetected: 3 });
      const before = h.telemetry.families.length;
      for (let i = 0; i < 5; i++) h.ingest.apply(`[METRICS]A${i}.Count:1|#|#hostname:h,1`, "worker");
      expect(h.telemetry.families).to.have.length(before + 3);
      expect(h.ingest.apply("[METRICS]A0.Count:2|#|#hostname:h,1", "worker")).to.deep.equal({ ok: true });
      expect(rejected(await h.scrape(), "worker", "undeclared")).to.equal(2);
      expect(h.logger.lines.filter((l) => l.includes("auto-detected already"))).to.have.length(2);
    });
  });

  describe("on random lines (property)", function () {
    this.timeout(120_000);
    for (const format of FORMATS) {
      it(`never throws, gives a reason for every refusal, counts it, and writes only model metrics (${format})`, async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.array(metricLineTextArbitrary, { minLength: 1, maxLength: 20 }),
            fc.boolean(),
            fc.constantFrom(...SOURCES),
            async (lines, autoDetect, source) => {
              const h = createLineHarness({ format, autoDetect });
              const before = nonModelFamilies(h, await h.scrape(), format);
              let refused = 0;
              for (const text of lines) {
                const outcome = h.ingest.apply(text, source);
                if (!outcome.ok) {
                  refused++;
                  expect(outcome.reason).to.be.a("string").and.not.be.empty;
                }
              }
              const written = h.events.map((e) => e.definition);
              expect(written.filter((d) => d.name === "serve_metric_lines_rejected_total")).to.have.length(
                refused,
              );
              expect(
                written.every(
                  (d) => d.name === "serve_metric_lines_rejected_total" || d.section === "model_metrics",
                ),
              ).to.equal(true);
              expect(nonModelFamilies(h, await h.scrape(), format)).to.equal(before);
            },
          ),
          { numRuns: 300 },
        );
      });
    }

    it("leaves an exposition promtool parses, whatever the lines (both formats)", async function () {
      const promtool = requireTool(this, "promtool");
      for (const format of FORMATS) {
        await fc.assert(
          fc.asyncProperty(
            fc.array(metricLineTextArbitrary, { minLength: 50, maxLength: 300 }),
            async (lines) => {
              const h = createLineHarness({ format, autoDetect: true });
              for (const text of lines) h.ingest.apply(text, "http");
              expect(parseErrors(promtool, await h.scrape()), format).to.deep.equal([]);
            },
          ),
          { numRuns: 25 },
        );
      }
    });
  });
});

describe("MetricLineIngest: series checked once, then recorded by value", () => {
  const TS_FRONTEND = (): boolean => true;

  it("keeps a gauge's last value whatever the order of the lines' dimensions", async () => {
    const h = createLineHarness({ autoDetect: true });
    const line = (dims: string, value: number): string =>
      `[METRICS]QueueSize.Count:${value}|#${dims}|#type:GAUGE|#hostname:h,1699061430`;
    for (let i = 0; i < 5; i++) {
      expect(h.ingest.apply(line("ModelName:m,Level:Model", i * 2), "worker")).to.deep.equal({ ok: true });
      expect(h.ingest.apply(line("Level:Model,ModelName:m", i * 2 + 1), "worker")).to.deep.equal({
        ok: true,
      });
    }
    // The last value goes to the order seen first: two series objects would be flushed in that order.
    h.ingest.apply(line("ModelName:m,Level:Model", 100), "worker");
    expect(sample(await h.scrape(), 'QueueSize{ModelName="m",Level="Model",Hostname="h",}')).to.equal(100);
  });

  it("still checks every value of a series it has seen, and adds counter increments exactly", async () => {
    const h = createLineHarness();
    const line = (value: string): string =>
      `Requests2XX.Count:${value}|#Level:Host|#hostname:ts,timestamp:1717105563`;
    for (let i = 0; i < 1000; i++) h.ingest.apply(line("1.0"), "file", TS_FRONTEND);
    expect(h.ingest.apply(line("-1.0"), "file", TS_FRONTEND)).to.include({ ok: false });
    expect(h.ingest.apply(line("1e300"), "file", TS_FRONTEND)).to.include({ ok: false });
    const text = await h.scrape();
    expect(sample(text, 'Requests2XX{Level="Host",Hostname="ts",}')).to.equal(1000);
    expect(rejected(text, "file", "invalid")).to.equal(2);
  });

  it("asks each permission of a series it has seen under another", async () => {
    const h = createLineHarness();
    const line = "Requests2XX.Count:1.0|#Level:Host|#hostname:ts,timestamp:1717105563";
    expect(h.ingest.apply(line, "file", TS_FRONTEND)).to.deep.equal({ ok: true });
    // The same series from a worker: forbidden, though the frontend's record of it was taken.
    expect(h.ingest.apply(line, "worker")).to.include({ ok: false });
    const text = await h.scrape();
    expect(sample(text, 'Requests2XX{Level="Host",Hostname="ts",}')).to.equal(1);
    expect(rejected(text, "worker", "forbidden")).to.equal(1);
  });

  it("hands listeners each line's request id, seen series or not", () => {
    const h = createLineHarness();
    for (const id of ["a", "b"]) {
      h.ingest.apply(
        `[METRICS]HandlerTime.ms:1.5|#ModelName:m,Level:Model|#hostname:h,1699061430,${id}`,
        "worker",
      );
    }
    expect(h.events.map((e) => e.requestId)).to.deep.equal(["a", "b"]);
  });
});
