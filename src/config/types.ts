/** A parsed listen address from `metrics_address` or `inference_address`. */
export interface ListenAddress {
  protocol: "http" | "https";
  /** An IPv4 address, a host name, or an IPv6 address without brackets (as `listen()` takes it). */
  host: string;
  /** 0 asks the OS for a free port. */
  port: number;
}

/** How `/metrics` is produced (`metrics_mode`). */
export type MetricsMode = "prometheus" | "log" | "legacy";

/** Naming of the exposed metrics: TorchServe's names, or the instruments' OpenTelemetry names. */
export type MetricsFormat = "torchserve" | "otel";

/** One model version the inference frontend serves, from the `models=` key. */
export interface ModelWorkerConfig {
  model: string;
  version: string;
  /** The version used when a request names none. */
  isDefault: boolean;
  /** Workers, i.e. requests in flight at once for this version. */
  workers: number;
  /** Base URL of a worker that is already running (exclusive with `command`). */
  url: string | undefined;
  /** Shell command the service starts per worker; `{port}` is replaced by a free port. */
  command: string | undefined;
  /** TorchServe's `responseTimeout` in seconds; undefined: `default_response_timeout`. */
  responseTimeoutSeconds?: number | undefined;
  /** TorchServe's `startupTimeout` in seconds; undefined: `default_startup_timeout`. */
  startupTimeoutSeconds?: number | undefined;
}

/** The service's whole configuration, resolved from defaults, config.properties and TS_* env vars. */
export interface Settings {
  metricsAddress: ListenAddress;
  enableMetricsApi: boolean;
  metricsMode: MetricsMode;
  metricsFormat: MetricsFormat;
  /** Path of a TorchServe-format metrics YAML; undefined means the bundled default catalog. */
  metricsConfig: string | undefined;
  modelMetricsAutoDetect: boolean;
  /**
   * Leave out host and GPU sampling; undefined: sample unless following TorchServe's logs (its own
   * system metrics, logged every minute, win there).
   */
  disableSystemMetrics: boolean | undefined;
  /** Seconds between host/GPU samples. */
  metricTimeInterval: number;
  /** How many GPUs to report; undefined means all that nvidia-smi lists, 0 means none. */
  numberOfGpu: number | undefined;
  inferenceAddress: ListenAddress;
  certificateFile: string | undefined;
  privateKeyFile: string | undefined;
  /** OpenSSL cipher list for TLS 1.2 on https addresses; undefined: forward-secret suites only. */
  tlsCiphers: string | undefined;
  /** Milliseconds an https client has from its TCP connection to the end of its TLS handshake. */
  tlsHandshakeTimeoutMs: number;
  /** The nvidia-smi executable (a name looked up on PATH, or a path). */
  nvidiaSmiPath: string;
  /** Milliseconds after which a hanging nvidia-smi is killed. */
  nvidiaSmiTimeoutMs: number;
  /** Seconds a series may go without updates before /metrics leaves it out; 0: never (TorchServe). */
  seriesExpirySeconds: number;
  /** Start a known model's ts_* counters at zero, before its first request (TorchServe does not). */
  torchserveZeroSeries: boolean;
  /** Series kept per metric; later ones are added into one overflow series. */
  maxSeriesPerMetric: number;
  /** Serve the inference address; undefined: only when `models` is not empty. */
  enableInferenceApi: boolean | undefined;
  /** Model versions behind the inference frontend. */
  models: readonly ModelWorkerConfig[];
  /** Requests that may wait for a worker, per model version, before 503. */
  jobQueueSize: number;
  /**
   * Seconds a worker has to answer a request (504 after), and a request may wait for a ready
   * worker (503 after), unless a model version sets `responseTimeout`.
   */
  defaultResponseTimeoutSeconds: number;
  /** Seconds a managed worker has to answer `/ping` after it starts, unless a model version sets `startupTimeout`. */
  defaultStartupTimeoutSeconds: number;
  /** Seconds an inference client may go without sending a byte of its unfinished body (408 after). */
  clientBodyTimeoutSeconds: number;
  /** Seconds an inference client may leave an answer unread while more waits for it (cut after). */
  clientReadTimeoutSeconds: number;
  /**
   * Seconds a stop (SIGTERM, SIGINT, stop()) lets requests already being answered finish before
   * every connection is cut; queued requests get 503 at once. 0: cut at once.
   */
  drainTimeoutSeconds: number;
  /** A running TorchServe's LOG_LOCATION: its ts_metrics.log, model_metrics.log and access_log.log are followed. */
  torchserveLogDir: string | undefined;
  /** TorchServe's METRICS_LOCATION, when it differs from its LOG_LOCATION; undefined: torchserveLogDir. */
  torchserveMetricsDir: string | undefined;
  /** Read TorchServe's live files from their beginning first, instead of from their end. */
  torchserveLogFromStart: boolean;
  /**
   * The followed TorchServe's hostname, for the access log's series until its metric lines name
   * it; undefined: learned from its lines (the sidecar's own until then).
   */
  torchserveHostname: string | undefined;
  /** The followed TorchServe's own config.properties, read for its metric_time_interval. */
  torchserveConfig: string | undefined;
  /**
   * The followed TorchServe's metric_time_interval in seconds, from {@link torchserveConfig} (60,
   * TorchServe's default, when that file does not set it); undefined: learned from its lines.
   */
  torchserveMetricTimeInterval: number | undefined;
  /** Gauges whose every value is also observed into a per-model histogram (percentiles). */
  histogramGauges: readonly string[];
  /** Files followed like `tail -F` for `[METRICS]` lines. */
  metricLogFiles: readonly string[];
  /** Largest body `POST /metric-lines` takes before 413. */
  metricLinesMaxBytes: number;
  /** Longest label value (dimension or hostname, in UTF-16 code units) a `[METRICS]` line may write. */
  maxLabelValueLength: number;
  /** Bucket bounds, in seconds, of the request-duration histogram. */
  requestDurationBuckets: readonly number[];
  /** Histograms that also carry native (exponential) buckets in the protobuf exposition. */
  nativeHistograms: readonly string[];
  /** Their finest resolution: Prometheus' schema, -4 to 8 (3: neighbouring bounds 9% apart). */
  nativeHistogramSchema: number;
  /** Their buckets per sign at most; past it, their resolution halves. */
  nativeHistogramMaxBuckets: number;
  /** Seconds a `/metrics` answer may take to send before its connection is closed. */
  scrapeSendTimeoutSeconds: number;
  /** The config.properties file the settings came from, if any; used in error messages. */
  sourceFile: string | undefined;
}
