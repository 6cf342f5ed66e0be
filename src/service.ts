import type { Readable } from "node:stream";
import { hostname as osHostname } from "node:os";
import { resolve as resolvePath } from "node:path";
import { loadCatalogFile, loadDefaultCatalog } from "./catalog/load.js";
import type { Catalog } from "./catalog/types.js";
import { ConfigError } from "./config/errors.js";
import { checkSeparateAddresses, resolveSettings } from "./config/settings.js";
import type { Settings } from "./config/types.js";
import { OTEL_TEXT_CONTENT_TYPE } from "./exposition/otel-text.js";
import { Scraper } from "./exposition/scrape.js";
import { chunksToString } from "./exposition/text-chunks.js";
import { TORCHSERVE_CONTENT_TYPE } from "./exposition/torchserve-text.js";
import { createConsoleLogger, type Logger } from "./log.js";
import { InferenceFrontend, type InferenceFrontendOptions } from "./frontend/frontend.js";
import { createInferenceHandler } from "./frontend/inference-server.js";
import { FileFollowerPart } from "./parts/file-follower.js";
import { InferenceApiPart } from "./parts/inference-api.js";
import { LineStreamPart } from "./parts/line-stream.js";
import { CertificateReloadPart } from "./parts/certificate-reload.js";
import { LogWriterPart } from "./parts/log-writer.js";
import { MetricsApiPart } from "./parts/metrics-api.js";
import { TelemetryPart } from "./parts/otlp-push.js";
import { startParts, stopParts, type ServicePart, type StartedParts } from "./parts/part.js";
import { SamplerPart } from "./parts/samplers.js";
import { TorchServeLogsPart } from "./parts/torchserve-logs.js";
import { DEFAULT_LIMITS, type ConnectionLimits, type TlsFiles } from "./server/listen.js";
import { readTlsSettings } from "./server/tls-files.js";
import { createMetricsHandler } from "./server/metrics-handler.js";
import { FileFollower } from "./sources/file-follower.js";
import { MetricLineIngest, type IngestOutcome } from "./sources/metric-ingest.js";
import { TorchServeLineIngest } from "./sources/torchserve-ingest.js";
import { describeTorchServeSilence } from "./sources/silence-watch.js";
import { lookBack, LOOK_BACK_BYTES } from "./sources/look-back.js";
import { TorchServeLogFollower } from "./sources/torchserve-logs.js";
import type { ExpositionFormat } from "./exposition/scrape.js";
import { ProcessSampler } from "./sources/process-sampler.js";
import { SystemSampler } from "./sources/system-sampler.js";
import { extraMetrics } from "./telemetry/extra-metrics.js";
import { LifecycleRecorder } from "./telemetry/lifecycle-recorder.js";
import { SeriesActivity } from "./telemetry/series-activity.js";
import { loadPushConfig } from "./telemetry/otel-config.js";
import { createTelemetry, type Telemetry } from "./telemetry/pipeline.js";
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
  /**
   * Stops the service as SIGTERM does (README "Stopping"): stops accepting, answers queued
   * inference requests 503, lets requests in flight finish within drain_timeout, cuts what is
   * left, stops workers, samplers and followers, and makes the last OTLP push. Safe to call twice.
   */
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
  // Configuration errors are found before anything is built or listens.
  checkSeparateAddresses(settings);
  const logDirectory =
    settings.metricsMode === "prometheus"
      ? undefined
      : logModeDirectory(settings, options.env ?? process.env);
  const catalog =
    settings.metricsConfig === undefined ? loadDefaultCatalog() : loadCatalogFile(settings.metricsConfig);
  const inferenceEnabled = settings.enableInferenceApi ?? settings.models.length > 0;
  const needsTls =
    (settings.enableMetricsApi && settings.metricsAddress.protocol === "https") ||
    (inferenceEnabled && settings.inferenceAddress.protocol === "https");
  const tls = needsTls ? readTlsSettings(settings) : undefined;
  const limits = { ...DEFAULT_LIMITS, tlsHandshakeTimeoutMs: settings.tlsHandshakeTimeoutMs };
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
  if (settings.torchserveLogDir !== undefined && options.logStream !== undefined) {
    logger.warn(
      `reading TorchServe's console on standard input and following torchserve_log_dir=${settings.torchserveLogDir}: ` +
        "if they are the same TorchServe, every record is counted twice (its console repeats its log files). " +
        "Use one: drop --stdin, or remove torchserve_log_dir from the sidecar's config",
    );
  }
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
    torchServeZeroSeries: settings.torchserveZeroSeries,
    // Log mode serves no /metrics to show them on.
    exemplars: settings.metricsMode !== "log",
    histogramGaugeBuckets: settings.requestDurationBuckets,
    nativeHistograms: {
      families: settings.nativeHistograms,
      schema: settings.nativeHistogramSchema,
      maxBuckets: settings.nativeHistogramMaxBuckets,
    },
    readers: push.readers,
    exponentialPush: push.exponential,
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
      exactTotal: telemetry.exactTotal,
      exemplars: telemetry.exemplars,
      native: telemetry.native,
    },
    logger,
  );
  const render = (filter: ReadonlySet<string> | undefined): Promise<Buffer[]> => scraper.scrapeChunks(filter);
  const ingest = new MetricLineIngest({
    recorder,
    register: (def) => telemetry.register(def),
    autoDetect: settings.modelMetricsAutoDetect,
    maxLabelValueLength: settings.maxLabelValueLength,
    logger,
    onApplied: (source) => ownMetrics.lineApplied(source),
  });

  const { parts, systemSampler, processSampler, metricsApi, inferenceApi, frontend } = buildParts({
    settings,
    options,
    logger,
    tls,
    limits,
    inferenceEnabled,
    followsTorchServe,
    logDirectory,
    hostname,
    telemetry,
    pushDescribe: push.describe,
    scraper,
    ingest,
    ownMetrics,
    activity,
    countResponse,
  });

  const started: StartedParts = [];
  const drainMs = settings.drainTimeoutSeconds * 1000;
  let stopping: Promise<void> | undefined;
  let keepAlive: NodeJS.Timeout | undefined;
  const stop = async (): Promise<void> => {
    await stopParts(started, drainMs, logger);
    clearInterval(keepAlive);
  };
  try {
    await startParts(parts, started);
  } catch (err) {
    // Nothing was served yet: no drain.
    await stopParts(started, 0, logger);
    throw err;
  }
  const activities = parts.map((part) => part.activity()).filter((a) => a !== undefined);
  if (metricsApi === undefined && inferenceApi === undefined && activities.length > 0) {
    // The samplers', followers' and exporters' timers are unref'd, so that a script or a test
    // that forgets stop() can still exit; a service with work of its own must hold the process
    // until stop(), as its listening servers would.
    keepAlive = setInterval(() => undefined, KEEP_ALIVE_MS);
  }
  if (settings.openMetrics && settings.metricsFormat === "otel") {
    logger.warn(
      "openmetrics=true is for TorchServe naming: with metrics_format=otel /metrics answers its own text only",
    );
  }
  if (
    settings.metricLogFiles.length > 0 &&
    metricsApi === undefined &&
    push.readers.length === 0 &&
    settings.metricsMode === "prometheus"
  ) {
    logger.warn(
      "metric_log_files are followed, but nothing reads their metrics: enable_metrics_api=false, " +
        "metrics_mode=prometheus and no OTLP push; enable one of these or embed the service and scrape() it",
    );
  }

  return {
    settings,
    catalog,
    metricsUrl: metricsApi?.url,
    inferenceUrl: inferenceApi?.url,
    activities,
    recordInference: (r) => recorder.recordInference(r),
    recordWorkerLoad: (r) => recorder.recordWorkerLoad(r),
    recordMetric: (name, value, dimensions) => recorder.record(name, value, dimensions),
    recordResponse: (status) => recorder.recordResponse(status),
    recordMetricLine: (line) => ingest.apply(line, "http"),
    scrape: async (names) => chunksToString(await render(names === undefined ? undefined : new Set(names))),
    scrapeChunks: (names) => render(names === undefined ? undefined : new Set(names)),
    sampleSystem: async () => {
      // Each delivers its sample through onSample.
      await Promise.all([systemSampler.sampleNow(), processSampler.sampleNow()]);
    },
    workersReady: () => frontend?.start() ?? Promise.resolve(),
    stop: () => (stopping ??= stop()),
  };
}

/** What the parts are built from: the settings and the pipeline every part feeds or reads. */
interface PartsWiring {
  settings: Settings;
  options: MetricsServiceOptions;
  logger: Logger;
  tls: TlsFiles | undefined;
  /** Connection limits of both listeners. */
  limits: ConnectionLimits;
  inferenceEnabled: boolean;
  followsTorchServe: boolean;
  /** Where metrics_mode=log|legacy writes; undefined in prometheus mode. */
  logDirectory: string | undefined;
  hostname: string;
  telemetry: Telemetry;
  pushDescribe: readonly string[];
  scraper: Scraper;
  ingest: MetricLineIngest;
  ownMetrics: LifecycleRecorder;
  activity: SeriesActivity;
  countResponse: (status: number) => void;
}

/** The part list, and the parts the service's own calls reach. */
interface ServiceParts {
  parts: ServicePart[];
  systemSampler: SamplerPart;
  processSampler: SamplerPart;
  metricsApi: MetricsApiPart | undefined;
  inferenceApi: InferenceApiPart | undefined;
  frontend: InferenceFrontend | undefined;
}

/**
 * The service's parts, in start order (a stop drains them all, then stops them in reverse; see
 * stopParts). A new source is one more entry here.
 */
function buildParts(wiring: PartsWiring): ServiceParts {
  const {
    settings,
    options,
    logger,
    tls,
    limits,
    inferenceEnabled,
    followsTorchServe,
    hostname,
    logDirectory,
  } = wiring;
  const { telemetry, scraper, ingest, ownMetrics, activity, countResponse } = wiring;
  const { recorder } = telemetry;
  const render = (filter: ReadonlySet<string> | undefined, format: ExpositionFormat): Promise<Buffer[]> =>
    scraper.scrapeChunks(filter, format);
  // The parts, in start order; a stop drains them all, then stops them in reverse (stopParts).
  // Telemetry first, so that it stops last: its final OTLP export comes after everything was
  // counted. The servers come last, so they stop first.
  const telemetryPart = new TelemetryPart({
    provider: telemetry.provider,
    describe: wiring.pushDescribe,
    collectPull: () => scraper.drain(),
    collectEveryMs: PULL_COLLECT_INTERVAL_MS,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS,
    logger,
  });
  const parts: ServicePart[] = [telemetryPart];
  if (logDirectory !== undefined && settings.metricsMode !== "prometheus") {
    parts.push(new LogWriterPart({ directory: logDirectory, mode: settings.metricsMode, recorder, logger }));
  }
  const systemSampler = new SamplerPart(
    "system sampler",
    new SystemSampler({
      intervalSeconds: settings.metricTimeInterval,
      host: !(settings.disableSystemMetrics ?? followsTorchServe),
      gpu: {
        command: settings.nvidiaSmiPath,
        timeoutMs: settings.nvidiaSmiTimeoutMs,
        maxDevices: settings.numberOfGpu,
      },
      logger,
      onSample: (sample) => recorder.recordSystem(sample.host, sample.gpus),
    }),
  );
  // Its own timer: host sampling may be off (disable_system_metrics) while the process is watched.
  const processSampler = new SamplerPart(
    "process sampler",
    new ProcessSampler({
      intervalMs: PROCESS_SAMPLE_INTERVAL_MS,
      logger,
      onSample: (reading) => ownMetrics.process(reading),
    }),
  );
  parts.push(systemSampler, processSampler);
  const metricsApi = settings.enableMetricsApi
    ? new MetricsApiPart({
        address: settings.metricsAddress,
        tls,
        limits,
        handler: createMetricsHandler({
          render,
          contentType: settings.metricsFormat === "otel" ? OTEL_TEXT_CONTENT_TYPE : TORCHSERVE_CONTENT_TYPE,
          protobuf: scraper.protobuf,
          openMetrics: settings.openMetrics && scraper.protobuf,
          onResponse: countResponse,
          logger,
          sendTimeoutMs: settings.scrapeSendTimeoutSeconds * 1000,
        }),
        onClientErrorResponse: countResponse,
        logger,
      })
    : undefined;
  const frontend = inferenceEnabled
    ? new InferenceFrontend({
        models: settings.models,
        jobQueueSize: settings.jobQueueSize,
        defaultResponseTimeoutSeconds: settings.defaultResponseTimeoutSeconds,
        defaultStartupTimeoutSeconds: settings.defaultStartupTimeoutSeconds,
        clientBodyTimeoutSeconds: settings.clientBodyTimeoutSeconds,
        clientReadTimeoutSeconds: settings.clientReadTimeoutSeconds,
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
      })
    : undefined;
  const inferenceApi =
    frontend === undefined
      ? undefined
      : new InferenceApiPart({
          address: settings.inferenceAddress,
          tls,
          limits,
          frontend,
          handler: createInferenceHandler({
            frontend,
            ingest,
            recorder,
            logger,
            maxLineBytes: settings.metricLinesMaxBytes,
          }),
          onClientErrorResponse: countResponse,
          versions: settings.models.length,
          logger,
        });
  // Every form TorchServe writes, recognised per line; other lines of a log are not records.
  const torchServeIngest = new TorchServeLineIngest({
    ingest,
    recorder,
    logger,
    maxLabelValueLength: settings.maxLabelValueLength,
    hostname: settings.torchserveHostname,
    // TorchServe's echoes of its metric types are in ts_log.log and on its console.
    typesFollowed: followsTorchServe,
  });
  // Stopped after every source that feeds it: what still waits (for a type, a model) is applied.
  parts.push({
    name: "TorchServe line ingest",
    activity: () => undefined,
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(torchServeIngest.stop()),
  });
  for (const path of settings.metricLogFiles) {
    const follower = new FileFollower({
      path,
      logger,
      onLine: (line) => torchServeIngest.apply(line, "file"),
    });
    parts.push(new FileFollowerPart(path, follower));
  }
  if (settings.torchserveLogDir !== undefined)
    parts.push(torchServeLogsPart(settings, torchServeIngest, logger));
  if (options.logStream !== undefined) {
    parts.push(
      new LineStreamPart({
        input: options.logStream,
        name: "standard input",
        logger,
        onLine: (line) => torchServeIngest.apply(line, "stdin"),
      }),
    );
  }
  // The servers open last: every follower is at its file's end by then, so a line written once
  // a port answers is read; a backlog (torchserve_log_from_start) is read behind open ports.
  if (metricsApi !== undefined) parts.push(metricsApi);
  if (inferenceApi !== undefined) parts.push(inferenceApi);
  if (tls !== undefined) {
    parts.push(
      new CertificateReloadPart({
        paths: {
          certificateFile: settings.certificateFile ?? "",
          privateKeyFile: settings.privateKeyFile ?? "",
        },
        loaded: tls,
        logger,
        apply: (files) => {
          metricsApi?.replaceTls(files);
          inferenceApi?.replaceTls(files);
        },
      }),
    );
  }
  return { parts, systemSampler, processSampler, metricsApi, inferenceApi, frontend };
}

/** The period of the timer that holds the process while the service works without a server (any long one). */
const KEEP_ALIVE_MS = 24 * 60 * 60 * 1000;

/**
 * How often the service reads its own process (CPU, memory, descriptors, event-loop delay): a
 * scrape shows the latest reading, so at most this old with Prometheus' default 15 s interval.
 */
const PROCESS_SAMPLE_INTERVAL_MS = 15_000;

/** How often the pull reader collects when OTLP push is on, scraped or not (see Scraper.drain). */
const PULL_COLLECT_INTERVAL_MS = 60_000;

/**
 * Where metrics_mode=log|legacy writes: TorchServe's METRICS_LOCATION, relative to the working
 * directory like its default `logs`; never the TorchServe log directory the service follows.
 */
function logModeDirectory(settings: Settings, env: NodeJS.ProcessEnv): string {
  const directory = resolvePath(env.METRICS_LOCATION ?? "logs");
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
  return directory;
}

/** The follower of a running TorchServe's log files, with its silence watch. */
function torchServeLogsPart(
  settings: Settings,
  ingest: TorchServeLineIngest,
  logger: Logger,
): TorchServeLogsPart {
  const logDir = settings.torchserveLogDir ?? "";
  const configured = settings.torchserveMetricTimeInterval;
  const torchServeIntervalMs = (): number =>
    configured !== undefined
      ? configured * 1000
      : (ingest.metricIntervalMs() ?? settings.metricTimeInterval * 1000);
  const follower = new TorchServeLogFollower({
    logDir,
    metricsDir: settings.torchserveMetricsDir,
    fromStart: settings.torchserveLogFromStart,
    logger,
    onLine: (line, file) => ingest.apply(line, "torchserve", file),
  });
  return new TorchServeLogsPart({
    follower,
    prime: () =>
      ingest
        .prime(() => lookBack(follower.paths))
        .then(
          (primed) =>
            logger.info(
              `TorchServe logs: ${primed} gauge series primed from the last ${LOOK_BACK_BYTES / (1024 * 1024)} MiB of each file (with its newest rotated copy when shorter)`,
            ),
          (err: unknown) => logger.warn(`TorchServe logs: priming gauges failed: ${String(err)}`),
        ),
    dirs: [...new Set([logDir, settings.torchserveMetricsDir ?? logDir])],
    fromStart: settings.torchserveLogFromStart,
    // The metric files' last line: the access log is written in every metrics_mode. Twice
    // TorchServe's own interval: from its config.properties (torchserve_config), else once its
    // lines show it, else twice metric_time_interval.
    silenceAfterMs: () => 2 * torchServeIntervalMs(),
    onSilence: (ms) =>
      logger.warn(
        describeTorchServeSilence({
          silentMs: ms,
          logDir,
          sawMetricLines: follower.lastLineAt() !== undefined,
          accessLines: follower.linesRead("access_log"),
          intervalMs:
            settings.torchserveMetricTimeInterval === undefined
              ? ingest.metricIntervalMs()
              : settings.torchserveMetricTimeInterval * 1000,
        }),
      ),
    logger,
  });
}

/** How long stop() waits for the final OTLP export (SIGTERM/SIGINT included) unless told otherwise. */
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5000;
