import { parseArgs } from "node:util";
import { ConfigError } from "./errors.js";

/** What the command line asked for. */
export interface CliArgs {
  /** config.properties path from `--ts-config`, else `TS_CONFIG_FILE`, else undefined (defaults). */
  configFile: string | undefined;
  /** OpenTelemetry configuration (OTLP push) from `--otel-config`, else `OTEL_CONFIG_FILE`, else undefined. */
  otelConfigFile: string | undefined;
  /** `--stdin`: read TorchServe's log lines (any form it writes) from standard input. */
  stdin: boolean;
  help: boolean;
  version: boolean;
}

/** The text printed by `serve-metrics --help`. */
export const CLI_USAGE = `Usage: serve-metrics [--ts-config FILE] [--otel-config FILE] [--stdin]
       serve-metrics slo-rules OBJECTIVES.yaml   (prints Prometheus SLO rules; --help)

Serves TorchServe's Metrics API (/metrics, default http://127.0.0.1:8082) on OpenTelemetry.

Options:
  --ts-config FILE   read settings from FILE, a TorchServe config.properties
  --otel-config FILE push metrics over OTLP as FILE says (OpenTelemetry
                     declarative configuration, e.g. otel-config.yaml)
  --stdin            read TorchServe's log lines from standard input, e.g.
                     docker logs -f torchserve 2>&1 | serve-metrics --stdin
  -h, --help         print this help and exit
  -v, --version      print the version and exit

Environment:
  TS_CONFIG_FILE            config.properties to read when --ts-config is not given
  TS_ENABLE_ENVVARS_CONFIG  true: TS_<KEY> variables (TS_METRICS_MODE, ...) override
                            the file's keys (same as enable_envvars_config=true in it)
  OTEL_CONFIG_FILE          OpenTelemetry configuration when --otel-config is not given
  OTEL_METRICS_EXPORTER, OTEL_EXPORTER_OTLP_*
                            without a configuration file: push over OTLP when
                            OTEL_METRICS_EXPORTER=otlp or an OTLP endpoint is set
`;

const OPTIONS = {
  "ts-config": { type: "string" },
  "otel-config": { type: "string" },
  stdin: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const;

/**
 * Parses the command line (without `node` and the script). `--ts-config` wins over `TS_CONFIG_FILE`
 * and `--otel-config` over `OTEL_CONFIG_FILE`; TorchServe does it the other way round, but a flag
 * typed now should beat an inherited variable.
 * @throws ConfigError (exitCode 2) on an unknown option, a stray argument or a missing FILE.
 */
export function parseCliArgs(argv: string[], env: NodeJS.ProcessEnv): CliArgs {
  const values = parseOptions(argv);
  const flag = values["ts-config"];
  if (flag?.trim() === "")
    throw new ConfigError("--ts-config needs a FILE, e.g. --ts-config config.properties");
  const fromEnv = env.TS_CONFIG_FILE?.trim() === "" ? undefined : env.TS_CONFIG_FILE;
  const otelFlag = values["otel-config"];
  if (otelFlag?.trim() === "")
    throw new ConfigError("--otel-config needs a FILE, e.g. --otel-config otel-config.yaml");
  const otelFromEnv = env.OTEL_CONFIG_FILE?.trim() === "" ? undefined : env.OTEL_CONFIG_FILE;
  return {
    configFile: flag ?? fromEnv,
    otelConfigFile: otelFlag ?? otelFromEnv,
    stdin: values.stdin ?? false,
    help: values.help ?? false,
    version: values.version ?? false,
  };
}

function parseOptions(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    // parseArgs' messages name the offending option but span lines; keep one line and add where help is.
    const reason =
      err instanceof Error ? err.message.replace(/\s*\n\s*/g, " ").replace(/\.$/, "") : String(err);
    throw new ConfigError(`${reason}; run serve-metrics --help for usage`);
  }
}
