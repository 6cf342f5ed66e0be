import { startMetricsService, type MetricsService, type MetricsServiceOptions } from "../../src/service.js";
import type { Settings } from "../../src/config/types.js";
import { createMemoryLogger, type MemoryLogger } from "../../src/log.js";

/** A service on a loopback port chosen by the OS, with no GPU and an isolated environment. */
export async function startTestService(
  settings: Partial<Settings> = {},
  options: {
    configFile?: string;
    env?: NodeJS.ProcessEnv;
    workerTimings?: MetricsServiceOptions["workerTimings"];
  } = {},
): Promise<{ service: MetricsService; logger: MemoryLogger; url: string }> {
  const logger = createMemoryLogger();
  const service = await startMetricsService({
    configFile: options.configFile,
    env: options.env ?? {},
    logger,
    hostname: "test-host",
    workerTimings: options.workerTimings,
    settings: {
      metricsAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      numberOfGpu: 0,
      ...settings,
    },
  });
  return { service, logger, url: `${service.metricsUrl ?? "http://disabled"}/metrics` };
}
