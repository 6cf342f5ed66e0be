import { readFileSync } from "node:fs";
import type { Readable } from "node:stream";
import { hostname as osHostname } from "node:os";
import { resolve as resolvePath } from "node:path";
import { createSecureContext } from "node:tls";
import { loadCatalogFile, loadDefaultCatalog } from "./catalog/load.js";
import type { Catalog } from "./catalog/types.js";
import { ConfigError } from "./config/errors.js";
import { resolveSettings } from "./config/settings.js";
import type { Settings } from "./config/types.js";
import { MetricsLogWriter } from "./exposition/log-writer.js";
import { OTEL_TEXT_CONTENT_TYPE } from "./exposition/otel-text.js";
import { Scraper } from "./exposition/scrape.js";
import { chunksToString } from "./exposition/text-chunks.js";
import { TORCHSERVE_CONTENT_TYPE } from "./exposition/torchserve-text.js";
import { createConsoleLogger, type Logger } from "./log.js";
import { InferenceFrontend, type InferenceFrontendOptions } from "./frontend/frontend.js";
import { createInferenceHandler } from "./frontend/inference-server.js";
import { answerClientErrors, listen, type ListeningServer, type TlsFiles } from "./server/listen.js";
import { isLoopbackAddress } from "./server/loopback.js";
import { FileFollower } from "./sources/file-follower.js";
import { MetricLineIngest, type IngestOutcome } from "./sources/metric-ingest.js";
import { readLineStream } from "./sources/line-stream.js";
import { SilenceWatch } from "./sources/silence-watch.js";
import { TorchServeLineIngest } from "./sources/torchserve-ingest.js";
import { TorchServeLogFollower } from "./sources/torchserve-logs.js";
import { createMetricsHandler } from "./server/metrics-handler.js";
import type { ExpositionFormat } from "./exposition/scrape.js";
import { ProcessSampler } from "./sources/process-sampler.js";
import { SystemSampler } from "./sources/system-sampler.js";
import { extraMetrics } from "./telemetry/extra-metrics.js";
import { LifecycleRecorder } from "./telemetry/lifecycle-recorder.js";
import { SeriesActivity } from "./telemetry/series-activity.js";
import { loadPushConfig } from "./telemetry/otel-config.js";
import { createTelemetry } from "./telemetry/pipeline.js";
import type { InferenceRecord, WorkerLoadRecord } from "./telemetry/recorder.js";

/** How to start a {@link MetricsService}. Everything is optional: no options means TorchServe's defaults. */
export interface MetricsServiceOptions {
  /** A config.properties file, read as `--ts-config` reads it. */
  configFile?: string;
  /** Settings that win over the file and the defaults (already typed, so not re-validated). */
  settings?: Partial<Settings>;
  /** Environment for `TS_*` overrides (used only when enable_envvars_config=true); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where the service's own messages go; default stderr. */
  logger?: Logger;
  /** The Hostname label; default os.hostname(). */
  hostname?: string;
  /** Supervision times of managed workers (defaults: 60 s ready timeout, 1–30 s backoff, 5 s grace). */
  workerTimings?: InferenceFrontendOptions["workerTimings"];
  /**
   * OTLP push configuration (OpenTelemetry declarative format, like `--otel-config`); default
   * `env.OTEL_CONFIG_FILE`, else the OTEL_METRICS_EXPORTER / OTEL_EXPORTER_OTLP_* variables of `env`.
   */
  otelConfigFile?: string;
  /** How long stop() waits for the final OTLP export before giving up on it; default 5000 ms. */
  shutdownTimeoutMs?: number;
  /**
   * A stream of TorchServe's log lines (any form it writes: its console, ts_log.log, the metric
   * files, the access log), read to its end; the CLI's `--stdin` passes `process.stdin`.
   */
  logStream?: Readable;
}

/** A running service: record through its typed calls, scrape it, stop it. */
export interface MetricsService {
  readonly settings: Settings;
  readonly catalog: Catalog;
  /** Where the metrics API listens (e.g. `http://127.0.0.1:8082`), undefined when it is disabled. */
  readonly metricsUrl: string | undefined;
  /** Where the inference frontend listens (e.g. `http://127.0.0.1:8080`), undefined when it is off. */
  readonly inferenceUrl: string | undefined;
  /**
   * What the service does on its own, one phrase each (`metrics API on http://…`, `OTLP push`,
   * `metrics_mode=log`, `following model_log.log`, `inference API on http://…`). While it is not
   * empty, the service keeps the process running until stop(). Empty: the service only answers its
   * embedder's calls (record*, scrape).
   */
  readonly activities: readonly string[];
  /** Records one inference request (response class, ts_* counters, QueueTime, WorkerThreadTime). */
  recordInference(record: InferenceRecord): void;
  /** Records a worker's load time in WorkerLoadTime. */
  recordWorkerLoad(record: WorkerLoadRecord): void;
  /** Records a catalog metric by name; throws MetricRecordError on an unknown metric or bad dimensions. */
  recordMetric(name: string, value: number, dimensions?: Readonly<Record<string, string>>): void;
  /** Counts one HTTP response sent by the embedding server in Requests2XX/4XX/5XX. */
  recordResponse(status: number): void;
  /** Applies one `[METRICS]` line as `POST /metric-lines` would. */
  recordMetricLine(line: string): IngestOutcome;
  /** Resolves once every managed worker has been ready once. */
  workersReady(): Promise<void>;
  /**
   * The text `GET /metrics` would answer now, optionally filtered like `name[]`, as one string
   * (so it fails when the text is past V8's string limit, ~512 MiB; see {@link scrapeChunks}).
   */
  scrape(names?: Iterable<string>): Promise<string>;
  /** The same as {@link scrape} as UTF-8 chunks, to be written in turn: what `GET /metrics` sends. */
  scrapeChunks(names?: Iterable<string>): Promise<Buffer[]>;
  /** Takes a host and GPU sample now rather than at the next interval. */
  sampleSystem(): Promise<void>;
  /** Stops sampling and closes the metrics API. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts the service: loads settings and the metrics catalog, builds the OpenTelemetry pipeline,
 * takes the first host/GPU sample, opens the metrics API (unless enable_metrics_api=false) and,
 * when models are configured, the inference frontend with its workers and the line endpoint.
 * Configuration problems reject with ConfigError or CatalogError (both carry exitCode 2).
 */
export async function startMetricsService(options: MetricsServiceOptions = {}): Promise<MetricsService> {
  const logger = options.logger ?? createConsoleLogger();
  const resolved = resolveSettings({ file: options.configFile, env: options.env ?? process.env, logger });
  const settings: Settings = { ...resolved, ...options.settings };
  const catalog =
    settings.metricsConfig === undefined ? loadDefaultCatalog() : loadCatalogFile(settings.metricsConfig);
  const inferenceEnabled = settings.enableInferenceApi ?? settings.models.length > 0;
  const needsTls =
    (settings.enableMetricsApi && settings.metricsAddress.protocol === "https") ||
    (inferenceEnabled && settings.inferenceAddress.protocol === "https");
  const tls = needsTls ? readTls(settings) : undefined;
  const hostname = options.hostname ?? osHostname();
  const declared = new Set(catalog.metrics.map((m) => m.name));
  const metrics = [
    ...catalog.metrics,
    // A catalog that declares one of these names keeps its own definition.
    ...extraMetrics(settings.requestDurationBuckets).filter((m) => !declared.has(m.name)),
  ];
  // Next to a running TorchServe its own figures win: its lines count its responses and carry its
  // host's and GPUs' metrics every minute.
  const followsTorchServe = settings.torchserveLogDir !== undefined || options.logStream !== undefined;
  const countResponse = followsTorchServe
    ? () => undefined
    : (status: number) => recorder.recordResponse(status);
  // The exporters exist before the recorder that counts their results.
  const exportResults: { to?: LifecycleRecorder } = {};
  const push = loadPushConfig({
    file: options.otelConfigFile,
    env: options.env ?? process.env,
    logger,
    onExport: (ok) => exportResults.to?.otlpExport(ok),
  });
  const telemetry = createTelemetry({
    metrics,
    format: settings.metricsFormat,
    hostname,
    logger,
    maxSeriesPerMetric: settings.maxSeriesPerMetric,
    histogramGauges: settings.histogramGauges,
    inferenceResponses: !followsTorchServe,
    histogramGaugeBuckets: settings.requestDurationBuckets,
    readers: push.readers,
    views: push.views,
    resource: push.resource,
  });
  const { recorder } = telemetry;

  const activity = new SeriesActivity(settings.seriesExpirySeconds * 1000);
  const ownMetrics = new LifecycleRecorder(recorder, {
    // Current state, not activity: a worker count must not expire for having stayed the same.
    onGauge: ({ instrument, attributes }) =>
      activity.pin(instrument.definition.name, instrument.definition.dimensions, attributes),
  });
  exportResults.to = ownMetrics;
  const overflowed = new Set<string>();
  const onOverflow = (metric: string): void => {
    if (overflowed.has(metric)) return;
    overflowed.add(metric);
    logger.warn(
      `${metric}: more than max_series_per_metric=${settings.maxSeriesPerMetric} series; ` +
        `further ones are added into its otel_metric_overflow="true" series`,
    );
  };
  const scraper = new Scraper(
    telemetry.reader,
    telemetry.families,
    {
      mode: settings.metricsMode,
      format: settings.metricsFormat,
      activity,
      seriesLimit: (family) => telemetry.seriesLimit(family),
      onOverflow,
    },
    logger,
  );
  const render = (filter: ReadonlySet<string> | undefined, format?: ExpositionFormat): Promise<Buffer[]> =>
    scraper.scrapeChunks(filter, format);
  const ingest = new MetricLineIngest({
    recorder,
    register: (def) => telemetry.register(def),
    autoDetect: settings.modelMetricsAutoDetect,
    maxLabelValueLength: settings.maxLabelValueLength,
    logger,
    onApplied: (source) => ownMetrics.lineApplied(source),
  });

  let sampleNow: () => Promise<unknown> = () => Promise.resolve();
  // Everything started so far, stopped in reverse order by stop() or when a later step fails.
  // The provider goes last: its shutdown makes the periodic readers' final export, bounded so that
  // a collector that hangs cannot hold the exit.
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
  const stops: (() => Promise<void> | void)[] = [
    () =>
      telemetry.provider.shutdown({ timeoutMillis: shutdownTimeoutMs }).catch((err: unknown) => {
        logger.warn(
          `final OTLP export abandoned after ${shutdownTimeoutMs} ms: ${err instanceof Error ? err.message : String(err)}`,
        );
      }),
  ];
  if (push.readers.length > 0) {
    const drain = setInterval(() => {
      scraper.drain().catch((err: unknown) => logger.warn(`collection: ${String(err)}`));
    }, DRAIN_INTERVAL_MS);
    drain.unref();
    stops.push(() => clearInterval(drain));
  }
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.splice(0).reverse()) await stop();
  };
  let stopping: Promise<void> | undefined;
  const activities: string[] = [];
  if (push.readers.length > 0) activities.push("OTLP push");
  let metricsServer: ListeningServer | undefined;
  let inferenceServer: ListeningServer | undefined;
  let frontend: InferenceFrontend | undefined;
  try {
    if (settings.metricsMode !== "prometheus") {
      // TorchServe's METRICS_LOCATION; relative to the working directory like its default `logs`.
      const directory = resolvePath((options.env ?? process.env).METRICS_LOCATION ?? "logs");
      const followed = settings.torchserveMetricsDir ?? settings.torchserveLogDir;
      if (followed !== undefined && directory === resolvePath(followed)) {
        // Reading back what it writes would count every update twice, forever.
        throw new ConfigError(
          `would write ts_metrics.log and model_metrics.log into ${directory}, the TorchServe log directory ` +
            "it follows; a sidecar serves /metrics: set metrics_mode=prometheus (this is likely TorchServe's own " +
            "config.properties, whose metrics_mode=log is TorchServe's setting, not the sidecar's)",
          { file: settings.sourceFile, key: "metrics_mode", value: settings.metricsMode },
        );
      }
      const writer = new MetricsLogWriter({ directory, mode: settings.metricsMode, logger });
      recorder.addListener((event) => writer.write(event));
      stops.push(() => writer.stop());
      logger.info(
        `metrics_mode=${settings.metricsMode}: writing ts_metrics.log and model_metrics.log in ${directory}`,
      );
      activities.push(`metrics_mode=${settings.metricsMode}`);
    }
    const sampler = new SystemSampler({
      intervalSeconds: settings.metricTimeInterval,
      host: !(settings.disableSystemMetrics ?? followsTorchServe),
      gpu: {
        command: settings.nvidiaSmiPath,
        timeoutMs: settings.nvidiaSmiTimeoutMs,
        maxDevices: settings.numberOfGpu,
      },
      logger,
      onSample: (sample) => recorder.recordSystem(sample.host, sample.gpus),
    });
    stops.push(() => sampler.stop());
    await sampler.start();
    // Its own timer: host sampling may be off (disable_system_metrics) while the process is watched.
    const processSampler = new ProcessSampler({
      intervalMs: PROCESS_SAMPLE_INTERVAL_MS,
      logger,
      onSample: (reading) => ownMetrics.process(reading),
    });
    stops.push(() => processSampler.stop());
    await processSampler.start();
    sampleNow = () => Promise.all([sampler.sampleNow(), processSampler.sampleNow()]);

    // Every form TorchServe writes, recognised per line; other lines of a log are not records.
    const torchServeIngest = new TorchServeLineIngest({ ingest, recorder });
    for (const path of settings.metricLogFiles) {
      const follower = new FileFollower({
        path,
        logger,
        onLine: (line) => torchServeIngest.apply(line, "file"),
      });
      stops.push(() => follower.stop());
      await follower.start();
      activities.push(`following ${path}`);
    }
    if (settings.torchserveLogDir !== undefined) {
      const follower = new TorchServeLogFollower({
        logDir: settings.torchserveLogDir,
        metricsDir: settings.torchserveMetricsDir,
        fromStart: settings.torchserveLogFromStart,
        logger,
        onLine: (line, file) => torchServeIngest.apply(line, "torchserve", file),
      });
      // The metric files' last line: the access log is written in every metrics_mode.
      const silence = new SilenceWatch({
        afterMs: 2 * settings.metricTimeInterval * 1000,
        lastHeard: () => follower.lastLineAt(),
        onSilence: (ms) =>
          logger.warn(
            `no metric line from TorchServe in ${Math.round(ms / 1000)} s (torchserve_log_dir=${settings.torchserveLogDir}): ` +
              "it writes them every metric_time_interval in metrics_mode=log (its default) or legacy; with " +
              "metrics_mode=prometheus it writes none. Set metrics_mode=log in TorchServe's config.properties " +
              "(and enable_metrics_api=false, or another metrics_address, so that its port 8082 is free)",
          ),
      });
      stops.push(() => follower.stop());
      stops.push(() => silence.stop());
      await follower.start();
      silence.start();
      const dirs = [
        ...new Set([settings.torchserveLogDir, settings.torchserveMetricsDir ?? settings.torchserveLogDir]),
      ];
      activities.push(`following TorchServe's logs in ${dirs.join(" and ")}`);
    }
    if (options.logStream !== undefined) {
      const reader = readLineStream({
        input: options.logStream,
        name: "standard input",
        logger,
        onLine: (line) => torchServeIngest.apply(line, "stdin"),
      });
      stops.push(() => reader.stop());
      void reader.ended.then((end) => {
        if (end.reason === "stopped") return;
        logger.info(
          `standard input ${end.reason === "end" ? "ended" : `failed (${end.error ?? "read error"})`} after ` +
            `${end.lines} lines; /metrics keeps serving what they wrote`,
        );
      });
      activities.push("reading TorchServe's log lines from standard input");
    }

    if (settings.enableMetricsApi) {
      const server = await listen(
        settings.metricsAddress,
        createMetricsHandler({
          render,
          contentType: settings.metricsFormat === "otel" ? OTEL_TEXT_CONTENT_TYPE : TORCHSERVE_CONTENT_TYPE,
          protobuf: scraper.protobuf,
          onResponse: countResponse,
          logger,
          sendTimeoutMs: settings.scrapeSendTimeoutSeconds * 1000,
        }),
        tls,
      );
      stops.push(() => server.close());
      answerClientErrors(server.server, countResponse);
      metricsServer = server;
      logger.info(`metrics API listening on ${server.url}/metrics`);
      activities.push(`metrics API on ${server.url}/metrics`);
    }
    for (const line of push.describe) logger.info(line);

    if (inferenceEnabled) {
      const models = new InferenceFrontend({
        models: settings.models,
        jobQueueSize: settings.jobQueueSize,
        defaultResponseTimeoutSeconds: settings.defaultResponseTimeoutSeconds,
        defaultStartupTimeoutSeconds: settings.defaultStartupTimeoutSeconds,
        recorder,
        lifecycle: ownMetrics,
        logger,
        onMetricLine: (line) => ingest.apply(line, "worker"),
        // A live worker's load time is written once, so it must not age; a dead one's may.
        onWorkerLife: (workerName, alive) => {
          const dims = recorder.definition("WorkerLoadTime")?.dimensions ?? [];
          const series = { WorkerName: workerName, Level: "Host", Hostname: hostname };
          if (alive) activity.pin("WorkerLoadTime", dims, series);
          else activity.unpin("WorkerLoadTime", dims, series);
        },
        workerTimings: options.workerTimings,
      });
      stops.push(() => models.stop());
      frontend = models;
      const server = await listen(
        settings.inferenceAddress,
        createInferenceHandler({
          frontend: models,
          ingest,
          recorder,
          logger,
          maxLineBytes: settings.metricLinesMaxBytes,
        }),
        tls,
      );
      // Closed before the workers stop, so no new request reaches a stopping worker.
      stops.push(() => server.close());
      answerClientErrors(server.server, countResponse);
      inferenceServer = server;
      const count = settings.models.length;
      logger.info(
        `inference API listening on ${server.url} (${count} model version${count === 1 ? "" : "s"})`,
      );
      activities.push(`inference API on ${server.url}`);
      const bound = boundAddress(server);
      if (!isLoopbackAddress(bound)) {
        logger.warn(
          `inference_address: listening on ${bound}, beyond loopback: POST ${server.url}/metric-lines has no ` +
            `authentication, so anyone who can reach this port can write model metrics. Bind 127.0.0.1 ` +
            `(inference_address=${settings.inferenceAddress.protocol}://127.0.0.1:${server.port}) or let only ` +
            `trusted hosts reach it (firewall, or an authenticating proxy in front).`,
        );
      }
      models.start().catch((err: unknown) => {
        // A stop before every worker was ready once is no error.
        if (stopping === undefined) logger.error(`workers: ${String(err)}`);
      });
    }
    if (metricsServer === undefined && inferenceServer === undefined && activities.length > 0) {
      // The samplers', followers' and exporters' timers are unref'd, so that a script or a test
      // that forgets stop() can still exit; a service with work of its own must hold the process
      // until stop(), as its listening servers would.
      const keepAlive = setInterval(() => undefined, KEEP_ALIVE_MS);
      stops.push(() => clearInterval(keepAlive));
    }
    if (
      settings.metricLogFiles.length > 0 &&
      metricsServer === undefined &&
      push.readers.length === 0 &&
      settings.metricsMode === "prometheus"
    ) {
      logger.warn(
        "metric_log_files are followed, but nothing reads their metrics: enable_metrics_api=false, " +
          "metrics_mode=prometheus and no OTLP push; enable one of these or embed the service and scrape() it",
      );
    }
  } catch (err) {
    await stopAll();
    throw err;
  }

  return {
    settings,
    catalog,
    metricsUrl: metricsServer?.url,
    inferenceUrl: inferenceServer?.url,
    activities,
    recordInference: (r) => recorder.recordInference(r),
    recordWorkerLoad: (r) => recorder.recordWorkerLoad(r),
    recordMetric: (name, value, dimensions) => recorder.record(name, value, dimensions),
    recordResponse: (status) => recorder.recordResponse(status),
    recordMetricLine: (line) => ingest.apply(line, "http"),
    scrape: async (names) => chunksToString(await render(names === undefined ? undefined : new Set(names))),
    scrapeChunks: (names) => render(names === undefined ? undefined : new Set(names)),
    sampleSystem: async () => {
      await sampleNow(); // delivers the sample through onSample
    },
    workersReady: () => frontend?.start() ?? Promise.resolve(),
    stop: () => (stopping ??= stopAll()),
  };
}

/** The period of the timer that holds the process while the service works without a server (any long one). */
const KEEP_ALIVE_MS = 24 * 60 * 60 * 1000;

/** The IP a server is bound to, as the OS reports it (`0.0.0.0`, `::`, `127.0.0.1`). */
function boundAddress(server: ListeningServer): string {
  const address = server.server.address();
  return typeof address === "object" && address !== null ? address.address : "";
}

/**
 * How often the service reads its own process (CPU, memory, descriptors, event-loop delay): a
 * scrape shows the latest reading, so at most this old with Prometheus' default 15 s interval.
 */
const PROCESS_SAMPLE_INTERVAL_MS = 15_000;

/** How often the pull reader collects when OTLP push is on, scraped or not (see Scraper.drain). */
const DRAIN_INTERVAL_MS = 60_000;

/** How long stop() waits for the final OTLP export (SIGTERM/SIGINT included) unless told otherwise. */
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5000;

/**
 * Reads the certificate and key, and checks each alone and then the pair before anything listens,
 * so that the error names the file that is wrong.
 */
function readTls(settings: Settings): TlsFiles {
  const origin = (key: string, value: string | undefined) => ({ file: settings.sourceFile, key, value });
  const read = (key: string, path: string | undefined): Buffer => {
    if (path === undefined) throw new ConfigError("is required for an https address", origin(key, path));
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`cannot be read: ${(err as Error).message}`, origin(key, path));
    }
  };
  const files = {
    cert: read("certificate_file", settings.certificateFile),
    key: read("private_key_file", settings.privateKeyFile),
  };
  const failure = (options: Partial<TlsFiles>): string | undefined => {
    try {
      createSecureContext(options);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  };
  // A PEM file says what it holds; the most common mix-up is the two files given the other way round.
  const holdsKey = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(files.cert.toString("latin1"));
  const holdsCertificate = files.key.includes("-----BEGIN CERTIFICATE-----");
  const certProblem = failure({ cert: files.cert });
  if (certProblem !== undefined) {
    const hint = holdsKey
      ? " (it holds a private key: are certificate_file and private_key_file swapped?)"
      : "";
    throw new ConfigError(
      `is not a PEM certificate OpenSSL can use: ${certProblem}${hint}`,
      origin("certificate_file", settings.certificateFile),
    );
  }
  const keyProblem = failure({ key: files.key });
  if (keyProblem !== undefined) {
    const hint = holdsCertificate ? " (it holds a certificate, not a private key)" : "";
    throw new ConfigError(
      `is not a PEM private key OpenSSL can use: ${keyProblem}${hint}`,
      origin("private_key_file", settings.privateKeyFile),
    );
  }
  const pairProblem = failure(files);
  if (pairProblem !== undefined) {
    throw new ConfigError(
      `does not work with certificate_file ${JSON.stringify(settings.certificateFile)}: ${pairProblem}`,
      origin("private_key_file", settings.privateKeyFile),
    );
  }
  return files;
}
