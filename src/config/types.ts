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

/** The service's whole configuration, resolved from defaults, config.properties and TS_* env vars. */
export interface Settings {
  metricsAddress: ListenAddress;
  enableMetricsApi: boolean;
  metricsMode: MetricsMode;
  metricsFormat: MetricsFormat;
  /** Path of a TorchServe-format metrics YAML; undefined means the bundled default catalog. */
  metricsConfig: string | undefined;
  modelMetricsAutoDetect: boolean;
  disableSystemMetrics: boolean;
  /** Seconds between host/GPU samples. */
  metricTimeInterval: number;
  /** How many GPUs to report; undefined means all that nvidia-smi lists, 0 means none. */
  numberOfGpu: number | undefined;
  inferenceAddress: ListenAddress;
  certificateFile: string | undefined;
  privateKeyFile: string | undefined;
  /** The nvidia-smi executable (a name looked up on PATH, or a path). */
  nvidiaSmiPath: string;
  /** Milliseconds after which a hanging nvidia-smi is killed. */
  nvidiaSmiTimeoutMs: number;
  /** The config.properties file the settings came from, if any; used in error messages. */
  sourceFile: string | undefined;
}
