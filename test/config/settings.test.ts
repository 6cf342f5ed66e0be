import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { DEFAULT_SETTINGS, resolveSettings } from "../../src/config/settings.js";
import type { Settings } from "../../src/config/types.js";
import { createMemoryLogger, type MemoryLogger } from "../../src/log.js";
import { catchConfigError, makeTempDir, removeTempDir, writeTempFile } from "./support.js";

describe("DEFAULT_SETTINGS", () => {
  it("holds the documented defaults, prometheus mode included", () => {
    expect(DEFAULT_SETTINGS).to.deep.equal({
      metricsAddress: { protocol: "http", host: "127.0.0.1", port: 8082 },
      enableMetricsApi: true,
      metricsMode: "prometheus",
      metricsFormat: "torchserve",
      metricsConfig: undefined,
      modelMetricsAutoDetect: false,
      disableSystemMetrics: undefined,
      metricTimeInterval: 60,
      numberOfGpu: undefined,
      inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 8080 },
      certificateFile: undefined,
      privateKeyFile: undefined,
      tlsCiphers: undefined,
      tlsHandshakeTimeoutMs: 10000,
      nvidiaSmiPath: "nvidia-smi",
      nvidiaSmiTimeoutMs: 5000,
      seriesExpirySeconds: 0,
      torchserveZeroSeries: false,
      maxSeriesPerMetric: 50000,
      enableInferenceApi: undefined,
      models: [],
      jobQueueSize: 100,
      defaultResponseTimeoutSeconds: 120,
      defaultStartupTimeoutSeconds: 120,
      clientBodyTimeoutSeconds: 30,
      clientReadTimeoutSeconds: 60,
      drainTimeoutSeconds: 15,
      torchserveLogDir: undefined,
      torchserveMetricsDir: undefined,
      torchserveLogFromStart: false,
      torchserveHostname: undefined,
      torchserveConfig: undefined,
      torchserveMetricTimeInterval: undefined,
      histogramGauges: ["HandlerTime", "PredictionTime"],
      metricLogFiles: [],
      metricLinesMaxBytes: 8388608,
      maxLabelValueLength: 1024,
      requestDurationBuckets: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
      nativeHistograms: [
        "serve_request_duration_seconds",
        "serve_handler_time_seconds",
        "serve_prediction_time_seconds",
      ],
      nativeHistogramSchema: 3,
      nativeHistogramMaxBuckets: 160,
      scrapeSendTimeoutSeconds: 15,
      sourceFile: undefined,
    } satisfies Settings);
  });

  it("is frozen, addresses included, so that no caller changes another's defaults", () => {
    expect(Object.isFrozen(DEFAULT_SETTINGS)).to.be.true;
    expect(Object.isFrozen(DEFAULT_SETTINGS.metricsAddress)).to.be.true;
    expect(Object.isFrozen(DEFAULT_SETTINGS.inferenceAddress)).to.be.true;
  });
});

describe("resolveSettings", () => {
  let dir: string;
  let logger: MemoryLogger;

  beforeEach(() => {
    dir = makeTempDir();
    logger = createMemoryLogger();
  });
  afterEach(() => removeTempDir(dir));

  /** Writes config.properties in the temp dir and resolves it with the temp dir as working directory. */
  function resolveText(text: string, env: NodeJS.ProcessEnv = {}): Settings {
    writeTempFile(dir, "config.properties", text);
    return resolveSettings({ file: "config.properties", env, logger, cwd: dir });
  }

  function configPath(): string {
    return join(dir, "config.properties");
  }

  describe("defaults", () => {
    it("gives the defaults without a file or env vars, and warns about nothing", () => {
      expect(resolveSettings({ env: {}, logger, cwd: dir })).to.deep.equal(DEFAULT_SETTINGS);
      expect(logger.lines).to.deep.equal([]);
    });

    it("gives the defaults for an empty file and records the file", () => {
      expect(resolveText("")).to.deep.equal({ ...DEFAULT_SETTINGS, sourceFile: configPath() });
    });

    it("returns a copy that can be changed without touching DEFAULT_SETTINGS", () => {
      const settings = resolveSettings({ env: {}, logger, cwd: dir });
      settings.metricsAddress.port = 1;
      expect(DEFAULT_SETTINGS.metricsAddress.port).to.equal(8082);
    });

    it("resolves a relative file against cwd and records the absolute path", () => {
      writeTempFile(dir, "etc/ts.properties", "metrics_mode=log\n");
      const settings = resolveSettings({ file: "etc/ts.properties", env: {}, logger, cwd: dir });
      expect(settings.sourceFile).to.equal(join(dir, "etc", "ts.properties"));
      expect(settings.metricsMode).to.equal("log");
    });
  });

  describe("keys", () => {
    it("reads every key it knows", () => {
      writeTempFile(dir, "metrics.yaml", "dimensions: []\n");
      writeTempFile(dir, "tls/cert.pem", "cert");
      writeTempFile(dir, "tls/key.pem", "key");
      const settings = resolveText(
        [
          "metrics_address=https://0.0.0.0:9443",
          "enable_metrics_api=false",
          "metrics_mode=legacy",
          "metrics_format=otel",
          "metrics_config=metrics.yaml",
          "model_metrics_auto_detect=true",
          "disable_system_metrics=true",
          "metric_time_interval=15",
          "number_of_gpu=2",
          "inference_address=http://[::1]:0",
          "certificate_file=tls/cert.pem",
          `private_key_file=${join(dir, "tls", "key.pem")}`,
          "tls_ciphers=HIGH:!aNULL",
          "tls_handshake_timeout_ms=3000",
          "nvidia_smi_path=/usr/local/bin/nvidia-smi",
          "nvidia_smi_timeout_ms=1500",
          "default_response_timeout=30",
          "default_startup_timeout=0.5",
          "torchserve_zero_series=true",
          "scrape_send_timeout=2.5",
          "client_body_timeout=5",
          "client_read_timeout=0.25",
          "drain_timeout=2.5",
          "native_histograms=serve_request_duration_seconds",
          "native_histogram_schema=-2",
          "native_histogram_max_buckets=40",
        ].join("\n"),
      );
      expect(settings).to.deep.equal({
        metricsAddress: { protocol: "https", host: "0.0.0.0", port: 9443 },
        enableMetricsApi: false,
        metricsMode: "legacy",
        metricsFormat: "otel",
        metricsConfig: join(dir, "metrics.yaml"),
        modelMetricsAutoDetect: true,
        disableSystemMetrics: true,
        metricTimeInterval: 15,
        numberOfGpu: 2,
        inferenceAddress: { protocol: "http", host: "::1", port: 0 },
        certificateFile: join(dir, "tls", "cert.pem"),
        privateKeyFile: join(dir, "tls", "key.pem"),
        tlsCiphers: "HIGH:!aNULL",
        tlsHandshakeTimeoutMs: 3000,
        nvidiaSmiPath: "/usr/local/bin/nvidia-smi",
        nvidiaSmiTimeoutMs: 1500,
        seriesExpirySeconds: 0,
        torchserveZeroSeries: true,
        maxSeriesPerMetric: 50000,
        enableInferenceApi: undefined,
        models: [],
        jobQueueSize: 100,
        defaultResponseTimeoutSeconds: 30,
        defaultStartupTimeoutSeconds: 0.5,
        clientBodyTimeoutSeconds: 5,
        clientReadTimeoutSeconds: 0.25,
        drainTimeoutSeconds: 2.5,
        torchserveLogDir: undefined,
        torchserveMetricsDir: undefined,
        torchserveLogFromStart: false,
        torchserveHostname: undefined,
        torchserveConfig: undefined,
        torchserveMetricTimeInterval: undefined,
        histogramGauges: ["HandlerTime", "PredictionTime"],
        metricLogFiles: [],
        metricLinesMaxBytes: 8388608,
        maxLabelValueLength: 1024,
        requestDurationBuckets: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
        nativeHistograms: ["serve_request_duration_seconds"],
        nativeHistogramSchema: -2,
        nativeHistogramMaxBuckets: 40,
        scrapeSendTimeoutSeconds: 2.5,
        sourceFile: configPath(),
      } satisfies Settings);
      expect(logger.lines).to.deep.equal([]);
    });

    for (const [text, expected] of [
      ["TRUE", true],
      ["True", true],
      ["false", false],
      ["FALSE", false],
      [" true ", true],
    ] as const) {
      it(`reads the boolean ${JSON.stringify(text)} as ${expected}`, () => {
        const settings = resolveText(`enable_metrics_api=${text}\ndisable_system_metrics=${text}\n`);
        expect(settings.enableMetricsApi).to.equal(expected);
        expect(settings.disableSystemMetrics).to.equal(expected);
      });
    }

    for (const [text, expected] of [
      ["log", "log"],
      ["LOG", "log"],
      ["Prometheus", "prometheus"],
      ["legacy   ", "legacy"],
    ] as const) {
      it(`reads metrics_mode ${JSON.stringify(text)} as ${expected}`, () => {
        expect(resolveText(`metrics_mode=${text}`).metricsMode).to.equal(expected);
      });
    }

    for (const [text, expected] of [
      ["otel", "otel"],
      ["OTel", "otel"],
      ["TorchServe", "torchserve"],
    ] as const) {
      it(`reads metrics_format ${JSON.stringify(text)} as ${expected} without a warning`, () => {
        expect(resolveText(`metrics_format=${text}`).metricsFormat).to.equal(expected);
        expect(logger.lines).to.deep.equal([]);
      });
    }

    it("reads TorchServe's old metrics_format=prometheus as torchserve, with a deprecation warning", () => {
      expect(resolveText("# old TorchServe setting\nmetrics_format=prometheus\n").metricsFormat).to.equal(
        "torchserve",
      );
      expect(logger.lines).to.have.length(1);
      expect(logger.lines[0]).to.match(
        new RegExp(`^WARN ${escape(configPath())} line 2: metrics_format=prometheus is deprecated`),
      );
      expect(logger.lines[0]).to.include("TorchServe removed metrics_format in 0.8");
    });

    for (const [text, expected] of [
      ["0.5", 0.5],
      ["60", 60],
      ["2.", 2],
      [".25", 0.25],
      ["2147483", 2147483],
    ] as const) {
      it(`reads metric_time_interval ${JSON.stringify(text)} as ${expected} seconds`, () => {
        expect(resolveText(`metric_time_interval=${text}`).metricTimeInterval).to.equal(expected);
      });
    }

    for (const [text, expected] of [
      ["0", 0],
      ["4", 4],
      ["", undefined],
    ] as const) {
      it(`reads number_of_gpu ${JSON.stringify(text)} as ${String(expected)}`, () => {
        expect(resolveText(`number_of_gpu=${text}`).numberOfGpu).to.equal(expected);
      });
    }

    it("keeps a bare nvidia_smi_path for PATH lookup and resolves one with a directory against cwd", () => {
      expect(resolveText("nvidia_smi_path=nvidia-smi-wrapper").nvidiaSmiPath).to.equal("nvidia-smi-wrapper");
      expect(resolveText("nvidia_smi_path=./bin/fake-smi").nvidiaSmiPath).to.equal(
        join(dir, "bin", "fake-smi"),
      );
    });

    it("treats an empty metrics_config, certificate_file or private_key_file as not set", () => {
      const settings = resolveText("metrics_config=\ncertificate_file=\nprivate_key_file=   \n");
      expect(settings.metricsConfig).to.equal(undefined);
      expect(settings.certificateFile).to.equal(undefined);
      expect(settings.privateKeyFile).to.equal(undefined);
    });

    it("resolves relative paths against the working directory, not the config file's directory", () => {
      writeTempFile(dir, "etc/config.properties", "metrics_config=metrics.yaml\n");
      writeTempFile(dir, "metrics.yaml", "dimensions: []\n");
      writeTempFile(dir, "etc/metrics.yaml", "dimensions: []\n");
      const settings = resolveSettings({ file: "etc/config.properties", env: {}, logger, cwd: dir });
      expect(settings.metricsConfig).to.equal(join(dir, "metrics.yaml"));
    });

    it("reads comments, ':' separators, whitespace and continuation lines", () => {
      const settings = resolveText(
        [
          "# serve-metrics",
          "! a Java-style comment",
          "",
          "metrics_mode : log",
          "metrics_address  http://127.0.0.1:\\",
          "    9082",
          "   enable_metrics_api=\\",
          "      false",
        ].join("\r\n"),
      );
      expect(settings.metricsMode).to.equal("log");
      expect(settings.metricsAddress).to.deep.equal({ protocol: "http", host: "127.0.0.1", port: 9082 });
      expect(settings.enableMetricsApi).to.equal(false);
    });

    it("takes the last value of a repeated key, and its line for errors", () => {
      expect(resolveText("metrics_mode=log\nmetrics_mode=legacy\n").metricsMode).to.equal("legacy");
      const err = catchConfigError(() => resolveText("metrics_mode=bad\nmetrics_mode=worse\n"));
      expect(err.line).to.equal(2);
      expect(err.value).to.equal("worse");
    });

    it("refuses a tls_ciphers list OpenSSL cannot use and a handshake timeout of 0", () => {
      for (const [line, key] of [
        ["tls_ciphers=NOT-A-CIPHER", "tls_ciphers"],
        ["tls_ciphers=RC4-SHA", "tls_ciphers"],
        ["tls_handshake_timeout_ms=0", "tls_handshake_timeout_ms"],
      ] as const) {
        const err = catchConfigError(() => resolveText(`${line}\n`));
        expect([err.key, err.exitCode]).to.deep.equal([key, 2]);
      }
    });

    it("accepts TorchServe's other keys, warning only that its .mar models are not served", () => {
      const settings = resolveText(
        [
          "inference_address=http://0.0.0.0:8080",
          "management_address=http://0.0.0.0:8081",
          "grpc_inference_port=7070",
          "grpc_management_port=7071",
          "model_store=/home/model-server/model-store",
          "load_models=all",
          "number_of_netty_threads=32",
          "netty_client_threads=4",
          "default_workers_per_model=2",
          "default_response_timeout=120",
          "job_queue_size=1000",
          "enable_envvars_config=false",
          "install_py_dep_per_model=true",
          "disable_token_authorization=true",
          "enable_model_api=true",
          "vmargs=-Xmx4g -XX:+UseContainerSupport",
          'models={"mnist": {"1.0": {"marName": "mnist.mar", \\',
          '    "minWorkers": 1}}}',
        ].join("\n"),
      );
      expect(settings.inferenceAddress).to.deep.equal({ protocol: "http", host: "0.0.0.0", port: 8080 });
      expect(settings.jobQueueSize).to.equal(1000);
      expect(settings.models).to.deep.equal([]);
      expect(logger.lines).to.deep.equal([
        `WARN ${configPath()} line 17: model mnist version 1.0: a TorchServe model archive entry without "url" or "command" is not served`,
      ]);
    });
  });

  describe("environment variables", () => {
    it("ignores TS_* variables unless switched on, and says so once", () => {
      const settings = resolveText("metrics_mode=log\n", {
        TS_METRICS_MODE: "legacy",
        TS_NUMBER_OF_GPU: "1",
      });
      expect(settings.metricsMode).to.equal("log");
      expect(settings.numberOfGpu).to.equal(undefined);
      expect(logger.lines).to.deep.equal([
        "WARN TS_METRICS_MODE, TS_NUMBER_OF_GPU are set but ignored: environment variables apply only with " +
          "enable_envvars_config=true in config.properties or TS_ENABLE_ENVVARS_CONFIG=true",
      ]);
    });

    it("lets TS_* variables win over the file when enable_envvars_config=true is in it", () => {
      const settings = resolveText("enable_envvars_config=true\nmetrics_mode=log\nnumber_of_gpu=1\n", {
        TS_METRICS_MODE: "legacy",
        TS_DISABLE_SYSTEM_METRICS: "true",
      });
      expect(settings.metricsMode).to.equal("legacy");
      expect(settings.disableSystemMetrics).to.equal(true);
      expect(settings.numberOfGpu).to.equal(1);
      expect(logger.lines).to.deep.equal([]);
    });

    it("switches on with TS_ENABLE_ENVVARS_CONFIG=true, with or without a file", () => {
      const env = { TS_ENABLE_ENVVARS_CONFIG: "TRUE", TS_METRICS_MODE: "log" };
      expect(resolveSettings({ env, logger, cwd: dir }).metricsMode).to.equal("log");
      expect(resolveText("metrics_mode=legacy\n", env).metricsMode).to.equal("log");
    });

    it("stays off with enable_envvars_config=false and TS_ENABLE_ENVVARS_CONFIG=false", () => {
      const settings = resolveText("enable_envvars_config=false\n", {
        TS_ENABLE_ENVVARS_CONFIG: "false",
        TS_METRICS_MODE: "log",
      });
      expect(settings.metricsMode).to.equal("prometheus");
    });

    it("reads TS_<KEY> for every key it knows", () => {
      writeTempFile(dir, "m.yaml", "");
      writeTempFile(dir, "c.pem", "");
      writeTempFile(dir, "k.pem", "");
      const settings = resolveSettings({
        env: {
          TS_ENABLE_ENVVARS_CONFIG: "true",
          TS_METRICS_ADDRESS: "https://127.0.0.1:0",
          TS_ENABLE_METRICS_API: "false",
          TS_METRICS_MODE: "log",
          TS_METRICS_FORMAT: "otel",
          TS_METRICS_CONFIG: "m.yaml",
          TS_MODEL_METRICS_AUTO_DETECT: "true",
          TS_DISABLE_SYSTEM_METRICS: "true",
          TS_METRIC_TIME_INTERVAL: "0.5",
          TS_NUMBER_OF_GPU: "0",
          TS_INFERENCE_ADDRESS: "http://localhost:18080",
          TS_CERTIFICATE_FILE: "c.pem",
          TS_PRIVATE_KEY_FILE: "k.pem",
          TS_NVIDIA_SMI_PATH: "smi",
          TS_NVIDIA_SMI_TIMEOUT_MS: "250",
        },
        logger,
        cwd: dir,
      });
      expect(settings).to.deep.equal({
        metricsAddress: { protocol: "https", host: "127.0.0.1", port: 0 },
        enableMetricsApi: false,
        metricsMode: "log",
        metricsFormat: "otel",
        metricsConfig: join(dir, "m.yaml"),
        modelMetricsAutoDetect: true,
        disableSystemMetrics: true,
        metricTimeInterval: 0.5,
        numberOfGpu: 0,
        inferenceAddress: { protocol: "http", host: "localhost", port: 18080 },
        certificateFile: join(dir, "c.pem"),
        privateKeyFile: join(dir, "k.pem"),
        tlsCiphers: undefined,
        tlsHandshakeTimeoutMs: 10000,
        nvidiaSmiPath: "smi",
        nvidiaSmiTimeoutMs: 250,
        seriesExpirySeconds: 0,
        torchserveZeroSeries: false,
        maxSeriesPerMetric: 50000,
        enableInferenceApi: undefined,
        models: [],
        jobQueueSize: 100,
        defaultResponseTimeoutSeconds: 120,
        defaultStartupTimeoutSeconds: 120,
        clientBodyTimeoutSeconds: 30,
        clientReadTimeoutSeconds: 60,
        drainTimeoutSeconds: 15,
        torchserveLogDir: undefined,
        torchserveMetricsDir: undefined,
        torchserveLogFromStart: false,
        torchserveHostname: undefined,
        torchserveConfig: undefined,
        torchserveMetricTimeInterval: undefined,
        histogramGauges: ["HandlerTime", "PredictionTime"],
        metricLogFiles: [],
        metricLinesMaxBytes: 8388608,
        maxLabelValueLength: 1024,
        requestDurationBuckets: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
        nativeHistograms: [
          "serve_request_duration_seconds",
          "serve_handler_time_seconds",
          "serve_prediction_time_seconds",
        ],
        nativeHistogramSchema: 3,
        nativeHistogramMaxBuckets: 160,
        scrapeSendTimeoutSeconds: 15,
        sourceFile: undefined,
      } satisfies Settings);
    });

    it("names the env var, not a line, when an env value is invalid", () => {
      const err = catchConfigError(() =>
        resolveText("enable_envvars_config=true\nmetrics_mode=log\n", { TS_METRICS_MODE: "promethus" }),
      );
      expect(err.message).to.equal(
        'TS_METRICS_MODE (environment): metrics_mode: "promethus" is not one of prometheus, log, legacy',
      );
      expect(err).to.include({
        envVar: "TS_METRICS_MODE",
        key: "metrics_mode",
        value: "promethus",
        line: undefined,
      });
    });

    it("refuses a TS_ENABLE_ENVVARS_CONFIG that is not a boolean", () => {
      const err = catchConfigError(() =>
        resolveSettings({ env: { TS_ENABLE_ENVVARS_CONFIG: "yes" }, logger, cwd: dir }),
      );
      expect(err.message).to.equal(
        'TS_ENABLE_ENVVARS_CONFIG (environment): enable_envvars_config: "yes" is not a boolean; use true or false',
      );
    });
  });

  describe("errors", () => {
    it("names a missing config file and the OS reason", () => {
      const missing = join(dir, "nope.properties");
      const err = catchConfigError(() => resolveSettings({ file: missing, env: {}, logger, cwd: dir }));
      expect(err.message).to.match(
        new RegExp(`^${escape(missing)}: cannot read the config file \\(ENOENT: no such file or directory`),
      );
      expect(err.message).to.include("check --ts-config or TS_CONFIG_FILE");
      expect(err.file).to.equal(missing);
    });

    it("names a config file that is a directory", () => {
      mkdirSync(join(dir, "conf.d"));
      const err = catchConfigError(() => resolveSettings({ file: "conf.d", env: {}, logger, cwd: dir }));
      expect(err.message).to.include("EISDIR");
      expect(err.file).to.equal(join(dir, "conf.d"));
    });

    it("says which line, key and value are wrong, and what is allowed", () => {
      const err = catchConfigError(() =>
        resolveText("# metrics\nenable_metrics_api=true\nmetrics_mode=promethus\n"),
      );
      expect(err.message).to.equal(
        `${configPath()} line 3: metrics_mode: "promethus" is not one of prometheus, log, legacy`,
      );
      expect(err).to.include({ file: configPath(), line: 3, key: "metrics_mode", value: "promethus" });
    });

    it("refuses the same address for the metrics API and the inference API, naming both keys", () => {
      const err = catchConfigError(() =>
        resolveText(
          "metrics_address=http://127.0.0.1:9000\nenable_inference_api=true\ninference_address=http://127.0.0.1:9000\n",
        ),
      );
      expect(err).to.include({
        file: configPath(),
        line: 3,
        key: "inference_address",
        value: "http://127.0.0.1:9000",
      });
      expect(err.message).to.equal(
        `${configPath()} line 3: inference_address: "http://127.0.0.1:9000" uses port 9000 on the same address as ` +
          `metrics_address=http://127.0.0.1:9000 (${configPath()} line 1); the metrics API and the inference API ` +
          "need different ports: change one of them",
      );
    });

    it("refuses a wildcard address on the other API's port, and names a default it clashes with", () => {
      const err = catchConfigError(() =>
        resolveText("metrics_address=http://0.0.0.0:8080\nenable_inference_api=true\n"),
      );
      expect(err).to.include({ line: 1, key: "metrics_address", value: "http://0.0.0.0:8080" });
      expect(err.message).to.include("inference_address=http://127.0.0.1:8080 (its default)");
    });

    it("takes one port for both APIs when one of them is off, or on different hosts", () => {
      const off = resolveText("metrics_address=http://127.0.0.1:8080\n");
      expect(off.metricsAddress.port).to.equal(8080);
      const hosts = resolveText(
        "metrics_address=http://127.0.0.1:8080\ninference_address=http://127.0.0.2:8080\nenable_inference_api=true\n",
      );
      expect(hosts.inferenceAddress.host).to.equal("127.0.0.2");
    });

    it("takes drain_timeout from 0 to 3600 seconds, and refuses others", () => {
      expect(resolveText("drain_timeout=0\n").drainTimeoutSeconds).to.equal(0);
      for (const value of ["-1", "3601", "soon", ""]) {
        const err = catchConfigError(() => resolveText(`drain_timeout=${value}\n`));
        expect(err.message)
          .to.include("drain_timeout")
          .and.to.include("is not a number of seconds from 0 to 3600");
      }
    });

    it("counts continuation lines when naming the line", () => {
      const err = catchConfigError(() =>
        resolveText("models={\\\n  }\nload_models=all\nmetrics_mode=nope\n"),
      );
      expect(err.line).to.equal(4);
    });

    const invalid: [string, string, RegExp][] = [
      ["enable_metrics_api", "yes", /is not a boolean; use true or false$/],
      ["model_metrics_auto_detect", "1", /is not a boolean; use true or false$/],
      ["disable_system_metrics", "on", /is not a boolean; use true or false$/],
      ["enable_envvars_config", "enabled", /is not a boolean; use true or false$/],
      ["metrics_mode", "", /is not one of prometheus, log, legacy$/],
      ["metrics_mode", "pro metheus", /is not one of prometheus, log, legacy$/],
      ["metrics_format", "json", /is not one of torchserve, otel$/],
      ["metric_time_interval", "0", /is not a positive number of seconds/],
      ["metric_time_interval", "-5", /is not a positive number of seconds/],
      ["metric_time_interval", "1e3", /is not a positive number of seconds/],
      ["metric_time_interval", "soon", /is not a positive number of seconds/],
      ["metric_time_interval", "", /is not a positive number of seconds/],
      ["metric_time_interval", "2147484", /is longer than 2147483 seconds/],
      ["number_of_gpu", "-1", /is not an integer >= 0$/],
      ["number_of_gpu", "1.5", /is not an integer >= 0$/],
      ["number_of_gpu", "two", /is not an integer >= 0$/],
      ["nvidia_smi_timeout_ms", "0", /is not an integer from 1 to 2147483647$/],
      ["nvidia_smi_timeout_ms", "2.5", /is not an integer from 1 to 2147483647$/],
      ["nvidia_smi_timeout_ms", "2147483648", /is not an integer from 1 to 2147483647$/],
      ["nvidia_smi_path", "", /is empty/],
      ["max_label_value_length", "0", /is not an integer from 1 to 65536$/],
      ["max_label_value_length", "65537", /is not an integer from 1 to 65536$/],
      ["max_label_value_length", "1k", /is not an integer from 1 to 65536$/],
      ["native_histogram_schema", "9", /is not an integer from -4 to 8$/],
      ["native_histogram_schema", "-5", /is not an integer from -4 to 8$/],
      ["native_histogram_schema", "3.5", /is not an integer from -4 to 8$/],
      ["native_histogram_max_buckets", "1", /is not an integer from 2 to 16384$/],
      ["native_histograms", "serve request", /holds "serve request", which is not a metric name$/],
      ["metrics_address", "localhost:8082", /is not an http:\/\/ or https:\/\/ address/],
      ["inference_address", "http://127.0.0.1:99999", /port "99999"/],
    ];
    it("reads max_label_value_length", () => {
      expect(resolveText("max_label_value_length=65536\n").maxLabelValueLength).to.equal(65536);
    });

    for (const [key, value, problem] of invalid) {
      it(`refuses ${key}=${JSON.stringify(value)}`, () => {
        const err = catchConfigError(() => resolveText(`# line 1\n${key}=${value}\n`));
        expect(err.message.startsWith(`${configPath()} line 2: ${key}: ${JSON.stringify(value)} `)).to.equal(
          true,
          err.message,
        );
        expect(err.message).to.match(problem);
        expect(err).to.include({ file: configPath(), line: 2, key, value });
      });
    }

    for (const key of ["metrics_config", "certificate_file", "private_key_file"]) {
      it(`refuses a ${key} that names a missing file, naming the resolved path and the working directory`, () => {
        const err = catchConfigError(() => resolveText(`${key}=missing.file\n`));
        expect(err.message).to.include(
          `${configPath()} line 1: ${key}: "missing.file" names no readable file`,
        );
        expect(err.message).to.include(`ENOENT`);
        expect(err.message).to.include(join(dir, "missing.file"));
        expect(err.message).to.include(`relative paths are resolved against the working directory ${dir}`);
        expect(err).to.include({ key, value: "missing.file", line: 1 });
      });
    }

    it("leaves out the working-directory hint for an absolute path", () => {
      const missing = join(dir, "absent.yaml");
      const err = catchConfigError(() => resolveText(`metrics_config=${missing}\n`));
      expect(err.message).to.include(`metrics_config: ${JSON.stringify(missing)} names no readable file`);
      expect(err.message).not.to.include("working directory");
    });

    it("refuses a metrics_config that is a directory", () => {
      mkdirSync(join(dir, "configs"));
      const err = catchConfigError(() => resolveText("metrics_config=configs\n"));
      expect(err.message).to.include(`names ${join(dir, "configs")}, which is not a file`);
    });

    it("refuses an https metrics_address without certificate_file and private_key_file", () => {
      const err = catchConfigError(() =>
        resolveText("metrics_mode=log\nmetrics_address=https://0.0.0.0:8445\n"),
      );
      expect(err.message).to.equal(
        `${configPath()} line 2: metrics_address: "https://0.0.0.0:8445" needs certificate_file and ` +
          "private_key_file (PEM files), but certificate_file and private_key_file are not set; set them or use http://",
      );
      expect(err).to.include({ line: 2, key: "metrics_address" });
    });

    it("names the one TLS file that is missing", () => {
      writeTempFile(dir, "cert.pem", "");
      const err = catchConfigError(() =>
        resolveText("metrics_address=https://0.0.0.0\ncertificate_file=cert.pem\n"),
      );
      expect(err.message).to.include("but private_key_file is not set; set it or use http://");
    });

    it("refuses an https inference_address without TLS files too", () => {
      const err = catchConfigError(() => resolveText("inference_address=https://0.0.0.0\n"));
      expect(err.key).to.equal("inference_address");
      expect(err.message).to.include("needs certificate_file and private_key_file");
    });

    it("says that a keystore cannot stand in for the PEM files", () => {
      const err = catchConfigError(() =>
        resolveText("metrics_address=https://0.0.0.0\nkeystore=keystore.p12\nkeystore_pass=changeit\n"),
      );
      expect(err.message).to.include(
        "keystore is not supported; export its certificate and key as PEM files",
      );
    });

    it("names the env var of an https address that lacks TLS files", () => {
      const err = catchConfigError(() =>
        resolveSettings({
          env: { TS_ENABLE_ENVVARS_CONFIG: "true", TS_METRICS_ADDRESS: "https://127.0.0.1" },
          logger,
          cwd: dir,
        }),
      );
      expect(err.message).to.match(
        /^TS_METRICS_ADDRESS \(environment\): metrics_address: "https:\/\/127\.0\.0\.1" needs/,
      );
    });
  });

  describe("unknown keys", () => {
    const typos: [string, string | undefined][] = [
      ["metric_mode", "metrics_mode"],
      ["mertics_mode", "metrics_mode"],
      // Two swapped pairs: distance 2 only when a transposition counts as one edit.
      ["mertics_mdoe", "metrics_mode"],
      ["METRICS_MODE", "metrics_mode"],
      ["metrics_adress", "metrics_address"],
      ["mtrcs_mode", "metrics_mode"],
      ["model_stor", "model_store"],
      ["mtrc_mode", undefined],
      ["completely_unrelated", undefined],
    ];
    for (const [key, suggestion] of typos) {
      const hint = suggestion === undefined ? "" : `; did you mean ${suggestion}?`;
      it(`warns about ${key}${suggestion === undefined ? " without a hint" : `, suggesting ${suggestion}`}`, () => {
        const settings = resolveText(`metrics_mode=log\n${key}=legacy\n`);
        expect(logger.lines).to.deep.equal([
          `WARN ${configPath()} line 2: unknown key "${key}" is ignored${hint}`,
        ]);
        expect(settings.metricsMode).to.equal("log");
      });
    }
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
