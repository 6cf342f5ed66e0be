#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { CLI_USAGE, parseCliArgs } from "./config/cli-args.js";
import { ConfigError } from "./config/errors.js";
import { createConsoleLogger } from "./log.js";
import { startMetricsService, type MetricsService } from "./service.js";
import { sloRulesCommand } from "./slo/command.js";

/** Errors that carry their own exit status (ConfigError, CatalogError: 2). */
function exitCodeOf(err: unknown): number {
  return typeof err === "object" && err !== null && "exitCode" in err && typeof err.exitCode === "number"
    ? err.exitCode
    : 1;
}

/** Signals that stop the service gracefully (HUP too: there is no configuration to reload). */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR2"];

// Staying up idle would look healthy while collecting nothing, and exiting 0 makes a supervisor
// restart it in a silent loop: a configuration with nothing to do is refused like any other (2).
const NOTHING_TO_DO =
  "nothing to do: the metrics API is off (enable_metrics_api=false), no inference API is served (no models, " +
  "enable_inference_api unset or false), metrics_mode=prometheus writes no log, no metric_log_files or " +
  "torchserve_log_dir are followed, no --stdin and no OTLP push is configured (--otel-config, OTEL_METRICS_EXPORTER). Enable at least one of these.";

async function main(): Promise<void> {
  if (process.argv[2] === "slo-rules") {
    process.stdout.write(sloRulesCommand(process.argv.slice(3)));
    return;
  }
  const logger = createConsoleLogger();
  const args = parseCliArgs(process.argv.slice(2), process.env);
  if (args.help) {
    process.stdout.write(CLI_USAGE);
    return;
  }
  if (args.version) {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    process.stdout.write(`serve-metrics ${pkg.version}\n`);
    return;
  }
  // Installed before the start, so that a signal during it (the first GPU sample alone may take
  // seconds) stops the service once it is up, instead of ending the process with workers starting.
  const started: { service?: MetricsService } = {};
  let requested: NodeJS.Signals | undefined;
  let stopping = false;
  const stop = (running: MetricsService, signal: NodeJS.Signals): void => {
    stopping = true;
    // What the stop does and how long it may take, so that a supervisor's kill timeout can be set.
    logger.info(
      `${signal}: stopping (new connections refused, queued requests answered 503, requests in flight ` +
        `given up to drain_timeout=${running.settings.drainTimeoutSeconds} s)`,
    );
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error(`stop failed: ${String(err)}`);
        process.exit(1);
      },
    );
  };
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping || (requested !== undefined && requested !== "SIGHUP")) {
      // A second signal while stopping: no more grace. The exit hook kills the workers' groups.
      logger.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    const { service } = started;
    if (service === undefined) {
      requested = signal;
      // A SIGHUP may turn out to mean "reopen the log-mode files" (see below).
      logger.info(`${signal}: ${signal === "SIGHUP" ? "acted on" : "stopping"} as soon as the start is done`);
      return;
    }
    stop(service, signal);
  };
  // Each of these would otherwise end the process at once, leaving its workers to the guardian.
  for (const signal of STOP_SIGNALS) process.on(signal, shutdown);
  const service = await startMetricsService({
    configFile: args.configFile,
    otelConfigFile: args.otelConfigFile,
    logStream: args.stdin ? process.stdin : undefined,
    logger,
  });
  if (service.activities.length === 0) {
    await service.stop();
    throw new ConfigError(NOTHING_TO_DO, { file: service.settings.sourceFile });
  }
  started.service = service;
  // With log-mode files, SIGHUP is logrotate's "reopen them" (postrotate), never "stop"; one that
  // came during the start found the files just opened.
  const hangupReopens = service.settings.metricsMode !== "prometheus";
  const reopened = (): void => logger.info("SIGHUP: log-mode files reopened (SIGTERM stops the service)");
  if (hangupReopens) {
    process.off("SIGHUP", shutdown);
    process.on("SIGHUP", reopened);
  }
  if (requested === "SIGHUP" && hangupReopens) reopened();
  else if (requested !== undefined) stop(service, requested);
}

main().catch((err: unknown) => {
  // Configuration errors (2) and listen failures (1) are for people: the message, not a stack.
  process.stderr.write(`serve-metrics: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(exitCodeOf(err));
});
