import { expect } from "chai";
import { fileURLToPath } from "node:url";
import { relative } from "node:path";
import {
  AggregationTemporality,
  AggregationType,
  InstrumentType,
  PeriodicExportingMetricReader,
  type MetricReader,
} from "@opentelemetry/sdk-metrics";
import { createMemoryLogger } from "../../src/log.js";
import { loadPushConfig, type PushConfig } from "../../src/telemetry/otel-config.js";
import { catchConfigError, makeTempDir, removeTempDir, writeTempFile } from "../config/support.js";

const SHIPPED = fileURLToPath(new URL("../../otel-config.yaml", import.meta.url));

/** Loads, hands the result to `check`, then shuts the readers down (each holds an interval timer). */
async function withPush(
  opts: { file?: string; env?: NodeJS.ProcessEnv },
  check: (push: PushConfig, warnings: string[]) => void,
): Promise<void> {
  const logger = createMemoryLogger();
  const push = loadPushConfig({ file: opts.file, env: opts.env ?? {}, logger });
  try {
    check(
      push,
      logger.lines.filter((l) => l.startsWith("WARN")),
    );
  } finally {
    await Promise.all(push.readers.map((r) => r.shutdown({ timeoutMillis: 10 }).catch(() => undefined)));
  }
}

function only(readers: MetricReader[]): PeriodicExportingMetricReader {
  expect(readers).to.have.length(1);
  const [reader] = readers;
  expect(reader).to.be.instanceOf(PeriodicExportingMetricReader);
  return reader as PeriodicExportingMetricReader;
}

const FILE_HEAD = 'file_format: "1.0"\n';
const periodic = (exporter: string): string =>
  `${FILE_HEAD}meter_provider:\n  readers:\n    - periodic:\n        exporter:\n${exporter}`;

describe("loadPushConfig", () => {
  let dir: string;
  beforeEach(() => (dir = makeTempDir()));
  afterEach(() => removeTempDir(dir));
  const write = (text: string): string => writeTempFile(dir, "otel-config.yaml", text);

  describe("the shipped otel-config.yaml", () => {
    it("gives one OTLP http/protobuf reader to a local collector, a bucket view and resource attributes", async () => {
      await withPush({ file: SHIPPED }, (push, warnings) => {
        only(push.readers);
        expect(push.describe).to.deep.equal([
          "OTLP http/protobuf push to http://127.0.0.1:4318/v1/metrics every 60 s",
        ]);
        expect(push.views).to.deep.equal([
          {
            instrumentName: "serve.request.duration",
            aggregation: {
              type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM,
              options: {
                boundaries: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
                recordMinMax: undefined,
              },
            },
          },
        ]);
        expect(push.resource).to.deep.equal({ "deployment.environment.name": "production" });
        expect(warnings).to.deep.equal([]);
      });
    });

    it("substitutes ${VAR:-default} from the service's env, not the process's, and leaves process.env as it was", async () => {
      const before = { ...process.env };
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT = "http://from-process-env:4318";
      try {
        const env = {
          OTEL_EXPORTER_OTLP_ENDPOINT: "https://collector.example:4318",
          DEPLOYMENT_ENVIRONMENT: "staging",
          OTEL_RESOURCE_ATTRIBUTES: "team=ml,region=eu%2Dwest",
        };
        await withPush({ file: relative(process.cwd(), SHIPPED), env }, (push) => {
          expect(push.describe).to.deep.equal([
            "OTLP http/protobuf push to https://collector.example:4318/v1/metrics every 60 s",
          ]);
          expect(push.resource).to.deep.equal({
            "deployment.environment.name": "staging",
            team: "ml",
            region: "eu-west",
          });
        });
      } finally {
        delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      }
      expect(process.env).to.deep.equal(before);
    });

    it("is read from OTEL_CONFIG_FILE when no file is given", async () => {
      await withPush({ env: { OTEL_CONFIG_FILE: SHIPPED } }, (push) => {
        expect(push.describe).to.have.length(1);
      });
    });
  });

  describe("without a file, the OTEL_* variables", () => {
    const cases: [string, NodeJS.ProcessEnv, string[]][] = [
      ["push nothing when none is set", {}, []],
      ["push nothing for an OTLP header alone", { OTEL_EXPORTER_OTLP_HEADERS: "a=b" }, []],
      [
        "push to the default endpoint with OTEL_METRICS_EXPORTER=otlp",
        { OTEL_METRICS_EXPORTER: "otlp" },
        ["OTLP http/protobuf push to http://localhost:4318/v1/metrics every 60 s"],
      ],
      [
        "push when OTEL_EXPORTER_OTLP_ENDPOINT is set, adding /v1/metrics",
        { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" },
        ["OTLP http/protobuf push to http://collector:4318/v1/metrics every 60 s"],
      ],
      [
        "use OTEL_EXPORTER_OTLP_METRICS_ENDPOINT as it is, before the base endpoint",
        {
          OTEL_EXPORTER_OTLP_ENDPOINT: "http://base:4318",
          OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "http://metrics:9000/otlp",
        },
        ["OTLP http/protobuf push to http://metrics:9000/otlp every 60 s"],
      ],
      [
        "push OTLP/JSON with OTEL_EXPORTER_OTLP_PROTOCOL=http/json",
        { OTEL_METRICS_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" },
        ["OTLP http/json push to http://localhost:4318/v1/metrics every 60 s"],
      ],
      [
        "push over gRPC to the endpoint as given, the metrics protocol winning",
        {
          OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4317",
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
          OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: "grpc",
        },
        ["OTLP grpc push to http://collector:4317 every 60 s"],
      ],
      [
        "take the interval from OTEL_METRIC_EXPORT_INTERVAL",
        { OTEL_METRICS_EXPORTER: "otlp", OTEL_METRIC_EXPORT_INTERVAL: "200" },
        ["OTLP http/protobuf push to http://localhost:4318/v1/metrics every 0.2 s"],
      ],
      [
        "push nothing with OTEL_METRICS_EXPORTER=none, even with an endpoint",
        { OTEL_METRICS_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" },
        [],
      ],
      [
        "push nothing with OTEL_SDK_DISABLED=true",
        { OTEL_SDK_DISABLED: "true", OTEL_METRICS_EXPORTER: "otlp" },
        [],
      ],
    ];
    for (const [what, env, describe] of cases) {
      it(what, async () => {
        await withPush({ env }, (push) => {
          expect(push.describe).to.deep.equal(describe);
          expect(push.readers).to.have.length(describe.length);
        });
      });
    }

    it("read the service's env only, never process.env", async () => {
      process.env.OTEL_METRICS_EXPORTER = "otlp";
      try {
        await withPush({ env: {} }, (push) => expect(push.readers).to.deep.equal([]));
      } finally {
        delete process.env.OTEL_METRICS_EXPORTER;
      }
    });

    const temporalities: [string, AggregationTemporality, string][] = [
      ["cumulative", AggregationTemporality.CUMULATIVE, ""],
      ["delta", AggregationTemporality.DELTA, ", delta temporality"],
      // The specification's spelling, which @opentelemetry/configuration alone would turn into cumulative.
      ["LowMemory", AggregationTemporality.DELTA, ", low_memory temporality"],
    ];
    for (const [value, counterTemporality, suffix] of temporalities) {
      it(`apply OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=${value} to the exporter`, async () => {
        const env = {
          OTEL_METRICS_EXPORTER: "otlp",
          OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: value,
        };
        await withPush({ env }, (push) => {
          const reader = only(push.readers);
          expect(reader.selectAggregationTemporality(InstrumentType.COUNTER)).to.equal(counterTemporality);
          expect(reader.selectAggregationTemporality(InstrumentType.GAUGE)).to.equal(
            value === "delta" ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE,
          );
          expect(push.describe[0]).to.match(new RegExp(`every 60 s${suffix}$`));
        });
      });
    }

    it("give OTEL_RESOURCE_ATTRIBUTES (percent-decoded) and OTEL_SERVICE_NAME as resource attributes", async () => {
      const env = { OTEL_RESOURCE_ATTRIBUTES: "service.name=a,team=m%20l", OTEL_SERVICE_NAME: "ts-prod" };
      await withPush({ env }, (push) => {
        expect(push.resource).to.deep.equal({ "service.name": "ts-prod", team: "m l" });
      });
    });

    it("say why Node warns about gRPC over https to an IP address (DEP0123), and only then", async () => {
      const grpc = (endpoint: string): NodeJS.ProcessEnv => ({
        OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      });
      await withPush({ env: grpc("https://u:secret@10.0.0.5:4317") }, (_push, warnings) => {
        expect(warnings).to.have.length(1);
        expect(warnings[0]).to.match(
          /^WARN OTLP grpc push to https:\/\/\*\*\*@10\.0\.0\.5:4317: @grpc\/grpc-js sends the IP address as the TLS server name, .*\(DEP0123\).*Use a host name/,
        );
      });
      await withPush({ env: grpc("https://[::1]:4317") }, (_push, warnings) =>
        expect(warnings).to.have.length(1),
      );
      for (const endpoint of ["https://collector:4317", "http://10.0.0.5:4317"]) {
        await withPush({ env: grpc(endpoint) }, (_push, warnings) => expect(warnings).to.deep.equal([]));
      }
    });

    it("ignore OTEL_METRICS_EXPORTER=prometheus with a warning that names metrics_address", async () => {
      await withPush({ env: { OTEL_METRICS_EXPORTER: "prometheus" } }, (push, warnings) => {
        expect(push.readers).to.deep.equal([]);
        expect(warnings).to.have.length(1);
        expect(warnings[0]).to.include("metrics_address");
      });
    });

    const refused: [NodeJS.ProcessEnv, string, RegExp][] = [
      [
        { OTEL_METRICS_EXPORTER: "console" },
        "OTEL_METRICS_EXPORTER",
        /"console" is not supported; use otlp or none/,
      ],
      [
        { OTEL_METRICS_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "http" },
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        /"http" is not one of http\/protobuf, http\/json, grpc/,
      ],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }, "OTEL_EXPORTER_OTLP_ENDPOINT", /not an http/],
      [
        { OTEL_METRICS_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: "5s" },
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        /"5s" is not a whole number of milliseconds/,
      ],
      [
        { OTEL_METRICS_EXPORTER: "otlp", OTEL_METRIC_EXPORT_INTERVAL: "0" },
        "OTEL_METRIC_EXPORT_INTERVAL",
        /above 0/,
      ],
      [
        { OTEL_METRICS_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_COMPRESSION: "br" },
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        /one of gzip, none/,
      ],
      [
        { OTEL_METRICS_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_HEADERS: "authorization" },
        "OTEL_EXPORTER_OTLP_HEADERS",
        /item 1 of 1 is not name=value; write name=value pairs/,
      ],
      [
        { OTEL_METRICS_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: "sometimes" },
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
        /one of cumulative, delta, lowmemory/,
      ],
      [
        { OTEL_METRICS_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_CERTIFICATE: "/nonexistent/ca.pem" },
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        /a readable file/,
      ],
      [{ OTEL_RESOURCE_ATTRIBUTES: "team" }, "OTEL_RESOURCE_ATTRIBUTES", /item 1 of 1 is not name=value/],
    ];
    for (const [env, envVar, reason] of refused) {
      it(`refuse ${JSON.stringify(env)} naming ${envVar}`, () => {
        const err = catchConfigError(() =>
          loadPushConfig({ file: undefined, env, logger: createMemoryLogger() }),
        );
        expect(err.envVar).to.equal(envVar);
        expect(err.message).to.match(new RegExp(`^${envVar} \\(environment\\): `));
        expect(err.message).to.match(reason);
      });
    }
  });

  describe("a configuration file", () => {
    it("wins over every OTEL_EXPORTER_OTLP_* variable", async () => {
      const file = write(periodic("          otlp_grpc:\n            endpoint: http://file:4317\n"));
      const env = {
        OTEL_METRICS_EXPORTER: "none",
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://env:4318",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: "delta",
      };
      await withPush({ file, env }, (push) => {
        expect(push.describe).to.deep.equal(["OTLP grpc push to http://file:4317 every 60 s"]);
        expect(only(push.readers).selectAggregationTemporality(InstrumentType.COUNTER)).to.equal(
          AggregationTemporality.CUMULATIVE,
        );
      });
    });

    it("builds every periodic reader, with its interval, protocol and temporality", async () => {
      const file = write(
        `${FILE_HEAD}meter_provider:\n  readers:\n` +
          "    - periodic:\n        interval: 1500\n        exporter:\n          otlp_http:\n" +
          "            endpoint: http://a:4318/v1/metrics\n            encoding: json\n" +
          "            temporality_preference: delta\n" +
          "            default_histogram_aggregation: base2_exponential_bucket_histogram\n" +
          "    - periodic:\n        exporter:\n          otlp_grpc:\n            endpoint: collector:4317\n" +
          "            tls:\n              insecure: true\n",
      );
      await withPush({ file }, (push) => {
        expect(push.describe).to.deep.equal([
          "OTLP http/json push to http://a:4318/v1/metrics every 1.5 s, delta temporality",
          "OTLP grpc push to http://collector:4317 every 60 s",
        ]);
        const [first] = push.readers;
        expect(first?.selectAggregation(InstrumentType.HISTOGRAM)).to.deep.equal({
          type: AggregationType.EXPONENTIAL_HISTOGRAM,
        });
        expect(first?.selectAggregation(InstrumentType.COUNTER)).to.deep.equal({
          type: AggregationType.DEFAULT,
        });
      });
    });

    it("turns views into SDK views: buckets, drop, sum, last value, exponential, attribute keys, cardinality", async () => {
      const file = write(
        `${FILE_HEAD}meter_provider:\n  readers:\n    - periodic:\n        exporter:\n          otlp_http:\n` +
          "  views:\n" +
          "    - selector: {instrument_name: serve.request.duration}\n" +
          "      stream: {aggregation: {explicit_bucket_histogram: {boundaries: [1, 2], record_min_max: false}}}\n" +
          "    - selector: {instrument_name: serve.host.*, instrument_type: gauge}\n" +
          "      stream: {aggregation: {drop: {}}}\n" +
          "    - selector: {instrument_name: a}\n      stream: {aggregation: {sum: {}}, name: renamed, description: d}\n" +
          "    - selector: {instrument_name: b}\n      stream: {aggregation: {last_value: {}}}\n" +
          "    - selector: {instrument_type: histogram}\n" +
          "      stream: {aggregation: {base2_exponential_bucket_histogram: {max_size: 80}}}\n" +
          "    - selector: {instrument_name: c}\n" +
          "      stream: {attribute_keys: {included: [model_*, Level], excluded: [model_version]}, aggregation_cardinality_limit: 7}\n" +
          "    - selector: {instrument_name: d, meter_name: serve-metrics}\n      stream: {}\n",
      );
      await withPush({ file }, (push) => {
        const [buckets, drop, sum, lastValue, exponential, keys, meter] = push.views;
        expect(push.views).to.have.length(7);
        expect(buckets).to.deep.equal({
          instrumentName: "serve.request.duration",
          aggregation: {
            type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM,
            options: { boundaries: [1, 2], recordMinMax: false },
          },
        });
        expect(drop).to.deep.equal({
          instrumentName: "serve.host.*",
          instrumentType: InstrumentType.GAUGE,
          aggregation: { type: AggregationType.DROP },
        });
        expect(sum).to.deep.equal({
          instrumentName: "a",
          name: "renamed",
          description: "d",
          aggregation: { type: AggregationType.SUM },
        });
        expect(lastValue?.aggregation).to.deep.equal({ type: AggregationType.LAST_VALUE });
        expect(exponential).to.deep.equal({
          instrumentType: InstrumentType.HISTOGRAM,
          aggregation: {
            type: AggregationType.EXPONENTIAL_HISTOGRAM,
            options: { maxSize: 80, recordMinMax: undefined },
          },
        });
        expect(keys?.aggregationCardinalityLimit).to.equal(7);
        const [processor] = keys?.attributesProcessors ?? [];
        expect(
          processor?.process({ model_name: "m", model_version: "1", Level: "Model", Hostname: "h" }),
        ).to.deep.equal({ model_name: "m", Level: "Model" });
        expect(meter).to.deep.equal({ instrumentName: "d" });
      });
    });

    it("merges resource attributes_list under attributes", async () => {
      const file = write(
        `${FILE_HEAD}resource:\n  attributes:\n    - {name: team, value: ml}\n    - {name: replicas, value: 3, type: int}\n` +
          "  attributes_list: team=other,zone=a%2Fb\n" +
          "meter_provider:\n  readers:\n    - periodic:\n        exporter:\n          otlp_http:\n",
      );
      await withPush({ file }, (push) => {
        expect(push.resource).to.deep.equal({ team: "ml", replicas: 3, zone: "a/b" });
      });
    });

    it("warns about what it ignores: pull readers (metrics_address serves pull), traces, views of other meters", async () => {
      const file = write(
        `${FILE_HEAD}tracer_provider:\n  processors:\n    - simple:\n        exporter:\n          console:\n` +
          "meter_provider:\n  readers:\n" +
          "    - pull:\n        exporter:\n          prometheus/development:\n            port: 9464\n" +
          "    - periodic:\n        exporter:\n          otlp_http:\n" +
          "  views:\n    - selector: {meter_name: other}\n      stream: {aggregation: {drop: {}}}\n",
      );
      await withPush({ file }, (push, warnings) => {
        expect(push.readers).to.have.length(1);
        expect(push.views).to.deep.equal([]);
        expect(warnings).to.have.length(3);
        expect(warnings[0]).to.include("tracer_provider ignored");
        expect(warnings[1]).to.match(/meter_provider\.readers\[0\]\.pull ignored: .*metrics_address/);
        expect(warnings[2]).to.match(/meter_provider\.views\[0\] selects meter "other"/);
        for (const w of warnings) expect(w).to.include(file);
      });
    });

    it("pushes nothing when it says disabled: true", async () => {
      const file = write(
        periodic("          otlp_http:\n").replace(FILE_HEAD, `${FILE_HEAD}disabled: true\n`),
      );
      await withPush({ file }, (push) => expect(push.readers).to.deep.equal([]));
    });

    const invalid: [string, string, RegExp][] = [
      ["a YAML syntax error", `${FILE_HEAD}meter_provider: [\n`, /is not valid YAML: .*line 3/],
      ["no file_format", "meter_provider:\n  readers: []\n", /Unsupported file_format/],
      [
        "a wrong type",
        periodic("          otlp_http:\n").replace("- periodic:\n", "- periodic:\n        interval: soon\n"),
        /: meter_provider\.readers\[0\]\.periodic\.interval must be integer/,
      ],
      [
        "a misspelt key",
        periodic("          otlp_http:\n").replace("- periodic:\n", "- periodic:\n        intervall: 5\n"),
        /meter_provider\.readers\[0\]\.periodic must NOT have additional properties \(found: intervall, exporter\)/,
      ],
      [
        "a console exporter",
        periodic("          console:\n"),
        /meter_provider\.readers\[0\]\.periodic\.exporter\.console: is not supported: serve-metrics pushes with otlp_http or otlp_grpc/,
      ],
      [
        "an otlp_file exporter",
        periodic("          otlp_file/development:\n"),
        /exporter\.otlp_file\/development: is not supported/,
      ],
      [
        "an unknown compression",
        periodic("          otlp_http:\n            compression: br\n"),
        /exporter\.otlp_http\.compression: "br" is not one of gzip, none/,
      ],
      [
        "a non-HTTP endpoint",
        periodic("          otlp_http:\n            endpoint: ftp://collector/v1/metrics\n"),
        /otlp_http\.endpoint: "ftp:\/\/collector\/v1\/metrics" is not an http:\/\/ or https:\/\/ URL/,
      ],
      [
        "an alias without its anchor",
        periodic("          otlp_http:\n            headers_list: *nowhere\n"),
        /is not valid YAML: Unresolved alias/,
      ],
      [
        "a broken headers_list",
        periodic("          otlp_http:\n            headers_list: authorization\n"),
        /otlp_http\.headers_list: item 1 of 1 is not name=value/,
      ],
      [
        "an interval of 0",
        periodic("          otlp_http:\n").replace("- periodic:\n", "- periodic:\n        interval: 0\n"),
        /periodic\.interval: "0" must be more than 0 milliseconds/,
      ],
      [
        "custom certificates for gRPC",
        periodic("          otlp_grpc:\n            tls:\n              ca_file: /etc/ca.pem\n"),
        /otlp_grpc\.tls\.ca_file: "\/etc\/ca\.pem" is not supported for otlp_grpc/,
      ],
      [
        "an unreadable certificate",
        periodic("          otlp_http:\n            tls:\n              ca_file: /nonexistent/ca.pem\n"),
        /otlp_http\.tls\.ca_file: "\/nonexistent\/ca\.pem" cannot be read/,
      ],
      [
        "a broken substitution",
        periodic("          otlp_http:\n            endpoint: ${ENDPOINT:?required}\n"),
        /invalid env var substitution/,
      ],
      [
        "a unit selector",
        `${periodic("          otlp_http:\n")}  views:\n    - selector: {unit: ms}\n      stream: {}\n`,
        /meter_provider\.views\[0\]\.selector\.unit: "ms" is not supported/,
      ],
      [
        "a stream name for a wildcard selector",
        `${periodic("          otlp_http:\n")}  views:\n    - selector: {instrument_name: "serve.*"}\n      stream: {name: x}\n`,
        /views\[0\]\.stream\.name: "x" needs a selector\.instrument_name without wildcards/,
      ],
      [
        "bucket boundaries out of order",
        `${periodic("          otlp_http:\n")}  views:\n    - selector: {instrument_name: h}\n` +
          "      stream: {aggregation: {explicit_bucket_histogram: {boundaries: [5, 1]}}}\n",
        /explicit_bucket_histogram\.boundaries: "\[5,1\]" must increase strictly/,
      ],
    ];
    for (const [what, text, reason] of invalid) {
      it(`refuses ${what} with a ConfigError naming the file`, () => {
        const file = write(text);
        const err = catchConfigError(() => loadPushConfig({ file, env: {}, logger: createMemoryLogger() }));
        expect(err.file).to.equal(file);
        expect(err.message.startsWith(`${file}: `)).to.equal(true, err.message);
        expect(err.message).to.match(reason);
        expect(err.message).not.to.include("\n");
      });
    }

    it("refuses a missing file, naming it and the ways it was given", () => {
      const err = catchConfigError(() =>
        loadPushConfig({ file: `${dir}/missing.yaml`, env: {}, logger: createMemoryLogger() }),
      );
      expect(err.message).to.match(
        /missing\.yaml: cannot read the OpenTelemetry config file \(ENOENT.*--otel-config or OTEL_CONFIG_FILE$/,
      );
    });
  });
});
