/** Where a configuration value came from; every field is optional because some errors have no file or key. */
export interface ConfigOrigin {
  /** Absolute path of the config.properties file. */
  file?: string | undefined;
  /** 1-based line of the key in `file`. */
  line?: number | undefined;
  /** The environment variable the value came from, e.g. `TS_METRICS_MODE`. */
  envVar?: string | undefined;
  /** The config.properties key, e.g. `metrics_mode`. */
  key?: string | undefined;
  /** The value as written, before any conversion. */
  value?: string | undefined;
}

/**
 * Formats the place a value came from: `config.properties line 3`, `TS_METRICS_MODE (environment)`,
 * the bare file, or "" when nothing is known. Shared by errors and warnings so both read alike.
 */
export function describeOrigin(origin: ConfigOrigin): string {
  if (origin.envVar !== undefined) return `${origin.envVar} (environment)`;
  if (origin.file !== undefined) {
    return origin.line !== undefined ? `${origin.file} line ${origin.line}` : origin.file;
  }
  return "";
}

/**
 * A configuration the service refuses to start with. The message names where the value came from,
 * the key, the value and what is expected; the CLI prints it and exits with {@link ConfigError.exitCode}.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** Exit status for a bad configuration or command line (2, like a usage error). */
  readonly exitCode = 2;
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly envVar: string | undefined;
  readonly key: string | undefined;
  readonly value: string | undefined;
  /** What is wrong and what to do, without the location prefix. */
  readonly problem: string;

  constructor(problem: string, origin: ConfigOrigin = {}) {
    super(formatMessage(problem, origin));
    this.problem = problem;
    this.file = origin.file;
    this.line = origin.line;
    this.envVar = origin.envVar;
    this.key = origin.key;
    this.value = origin.value;
  }
}

function formatMessage(problem: string, origin: ConfigOrigin): string {
  let subject = "";
  if (origin.key !== undefined) {
    // JSON quoting keeps invisible characters (trailing spaces, tabs) visible in the message.
    subject =
      origin.value !== undefined ? `${origin.key}: ${JSON.stringify(origin.value)} ` : `${origin.key}: `;
  }
  const where = describeOrigin(origin);
  return `${where === "" ? "" : `${where}: `}${subject}${problem}`;
}
