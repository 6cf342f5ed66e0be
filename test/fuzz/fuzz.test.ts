import { expect } from "chai";
import fc from "fast-check";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { CatalogError, loadDefaultCatalog, parseCatalog } from "../../src/catalog/load.js";
import { ConfigError } from "../../src/config/errors.js";
import { resolveSettings } from "../../src/config/settings.js";
import { parseNameFilter } from "../../src/exposition/name-filter.js";
import { metricsByName } from "../../src/exposition/pull-reader.js";
import { renderTorchServeText } from "../../src/exposition/series-store.js";
import { createMemoryLogger } from "../../src/log.js";
import { parseMetricLine } from "../../src/sources/metric-line.js";
import { createTelemetry } from "../../src/telemetry/pipeline.js";

/** Property-based tests: every input either works or is refused with a clear error, never a crash. */
const RUNS = 10_000;

const dims = fc.dictionary(
  fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/),
  fc.stringMatching(/^[^,|\n\r]{0,10}$/).filter((v) => !v.includes("|") && v.trim() === v),
  { maxKeys: 4 },
);

describe("fuzzing", function () {
  this.timeout(120_000);

  describe("the [METRICS] line parser", () => {
    it("never throws on arbitrary text, and gives a reason for every refusal", () => {
      fc.assert(
        fc.property(
          fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.string({ unit: "grapheme" })),
          (text) => {
            const result = parseMetricLine(text);
            if (!result.ok) expect(result.reason).to.be.a("string").and.not.be.empty;
          },
        ),
        { numRuns: RUNS },
      );
    });

    it("reads back every well-formed line it is given, and survives any one-character damage to it", () => {
      const line = fc.record({
        name: fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,15}$/),
        unit: fc.constantFrom("Milliseconds", "Percent", "Count", "ms"),
        // `+ 0` turns -0 into 0: "-0" and "0" are the same value on the wire.
        value: fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 }).map((v) => v + 0),
        dimensions: dims,
        type: fc.option(fc.constantFrom("COUNTER", "GAUGE", "HISTOGRAM"), { nil: undefined }),
        hostname: fc.stringMatching(/^[a-z0-9.-]{1,12}$/),
        timestamp: fc.integer({ min: 0, max: 2_000_000_000 }),
        ids: fc.array(fc.uuid(), { maxLength: 2 }),
      });
      fc.assert(
        fc.property(line, fc.nat(), fc.string({ maxLength: 1 }), (l, at, replacement) => {
          const dimText = Object.entries(l.dimensions)
            .map(([k, v]) => `${k}:${v}`)
            .join(",");
          const text =
            `[METRICS]${l.name}.${l.unit}:${String(l.value)}|#${dimText}|#` +
            `${l.type === undefined ? "" : `type:${l.type}|#`}hostname:${l.hostname},${[String(l.timestamp), ...l.ids].join(",")}`;
          const parsed = parseMetricLine(text);
          expect(parsed.ok, text).to.be.true;
          if (parsed.ok) {
            expect(parsed.line).to.deep.include({
              name: l.name,
              value: l.value,
              hostname: l.hostname,
              requestIds: l.ids,
            });
            expect(parsed.line.dimensions).to.deep.equal(l.dimensions);
          }
          const i = at % text.length;
          const damaged = parseMetricLine(text.slice(0, i) + replacement + text.slice(i + 1));
          if (!damaged.ok) expect(damaged.reason).to.be.a("string").and.not.be.empty;
        }),
        { numRuns: RUNS },
      );
    });
  });

  describe("name[] query handling", () => {
    const telemetry = createTelemetry({
      metrics: loadDefaultCatalog().metrics,
      format: "torchserve",
      hostname: "h",
      logger: createMemoryLogger(),
    });
    telemetry.recorder.recordInference({ model: "m", status: 200, latencyMs: 1 });
    telemetry.recorder.recordResponse(404);

    it("never throws, and shows only the samples asked for, with HELP/TYPE only for families that have them", async () => {
      const data = metricsByName((await telemetry.reader.collect()).resourceMetrics);
      const names = telemetry.families.map((f) => f.name);
      const part = fc.oneof(
        fc.constantFrom(...names).map((n) => `name[]=${n}`),
        fc.constantFrom(...names).map((n) => `name%5B%5D=${encodeURIComponent(n)}`),
        fc.string().map((s) => `name[]=${s}`),
        fc.string(),
      );
      fc.assert(
        fc.property(fc.array(part, { maxLength: 6 }), (parts) => {
          const filter = parseNameFilter(`?${parts.join("&")}`);
          const text = renderTorchServeText(telemetry.families, data, filter);
          if (filter === undefined) return;
          const lines = text.split("\n").filter((l) => l !== "");
          for (const l of lines.filter((x) => !x.startsWith("#"))) {
            expect(filter.has(l.split(/[{ ]/)[0] ?? "")).to.be.true;
          }
          for (const l of lines.filter((x) => x.startsWith("# TYPE "))) {
            const family = l.split(" ")[2] ?? "";
            expect(lines.some((s) => !s.startsWith("#") && s.startsWith(family))).to.be.true;
          }
        }),
        { numRuns: RUNS },
      );
    });
  });

  describe("the config.properties reader", () => {
    let dir: string;
    before(() => (dir = mkdtempSync(join(tmpdir(), "fuzz-config-"))));
    after(() => rmSync(dir, { recursive: true, force: true }));

    const keys = [
      "metrics_address",
      "enable_metrics_api",
      "metrics_mode",
      "metrics_format",
      "metric_time_interval",
      "number_of_gpu",
      "inference_address",
      "models",
      "job_queue_size",
      "metric_log_files",
      "request_duration_buckets",
      "enable_envvars_config",
      "certificate_file",
      "metrics_config",
      "unknown_key",
    ];
    const line = fc.oneof(
      fc
        .tuple(
          fc.constantFrom(...keys),
          fc.constantFrom("=", ":", " ", " = "),
          fc.oneof(
            fc.string(),
            fc.json(),
            fc.constantFrom("true", "http://[::1]:0", "0", "-1", "1e3", "log"),
          ),
        )
        .map(([k, s, v]) => `${k}${s}${v}`),
      fc.string(),
    );

    it("either resolves or refuses with a ConfigError that names the file, never anything else", () => {
      const file = join(dir, "config.properties");
      fc.assert(
        fc.property(fc.array(line, { maxLength: 6 }), (lines) => {
          writeFileSync(file, lines.join("\n"));
          try {
            resolveSettings({ file, env: {}, logger: createMemoryLogger(), cwd: dir });
          } catch (err) {
            expect(err).to.be.instanceOf(ConfigError);
            expect((err as ConfigError).exitCode).to.equal(2);
            expect((err as ConfigError).message).to.include(file);
          }
        }),
        { numRuns: RUNS },
      );
    });
  });

  describe("the metrics YAML loader", () => {
    const metric = fc.record(
      {
        name: fc.oneof(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/), fc.string()),
        unit: fc.oneof(fc.constantFrom("ms", "Count"), fc.anything()),
        dimensions: fc.oneof(
          fc.array(fc.oneof(fc.stringMatching(/^[A-Za-z][A-Za-z0-9]{0,6}$/), fc.string())),
          fc.anything(),
        ),
        buckets: fc.oneof(fc.array(fc.double()), fc.anything()),
      },
      { requiredKeys: [] },
    );
    const catalog = fc.record(
      {
        dimensions: fc.array(fc.string()),
        ts_metrics: fc.dictionary(
          fc.constantFrom("counter", "gauge", "histogram", "timer"),
          fc.array(metric, { maxLength: 3 }),
        ),
        model_metrics: fc.oneof(
          fc.dictionary(fc.constantFrom("counter", "gauge", "histogram"), fc.array(metric, { maxLength: 3 })),
          fc.anything(),
        ),
      },
      { requiredKeys: [] },
    );

    it("either loads or refuses with a CatalogError naming the file, never anything else", () => {
      fc.assert(
        fc.property(
          fc.oneof(
            catalog.map((c) => stringify(c)),
            fc.string(),
            fc
              .anything()
              .filter((a) => a !== undefined)
              .map((a) => stringify(a)),
          ),
          (text) => {
            try {
              const loaded = parseCatalog(text, "fuzz.yaml");
              for (const m of loaded.metrics) expect(m.name).to.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/);
            } catch (err) {
              expect(err).to.be.instanceOf(CatalogError);
              expect((err as CatalogError).message).to.match(/^fuzz\.yaml: /);
            }
          },
        ),
        { numRuns: RUNS },
      );
    });
  });
});
