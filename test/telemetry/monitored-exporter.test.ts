import { expect } from "chai";
import { ExportResultCode } from "@opentelemetry/core";
import type { PushMetricExporter, ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { createMemoryLogger } from "../../src/log.js";
import { MonitoredExporter } from "../../src/telemetry/monitored-exporter.js";

type ExportResult = Parameters<Parameters<PushMetricExporter["export"]>[1]>[0];

/** An exporter whose exports wait until the test answers them. */
class HeldExporter implements PushMetricExporter {
  readonly pending: ((result: ExportResult) => void)[] = [];
  export(_metrics: ResourceMetrics, callback: (result: ExportResult) => void): void {
    this.pending.push(callback);
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

const METRICS = {} as ResourceMetrics;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("MonitoredExporter", () => {
  it("fails an export at its deadline, counts it once and ignores the result that comes later", async () => {
    const inner = new HeldExporter();
    const logger = createMemoryLogger();
    const counted: boolean[] = [];
    const exporter = new MonitoredExporter(inner, {
      target: "http://collector:4318/v1/metrics",
      logger,
      deadlineMs: 50,
      onResult: (ok) => counted.push(ok),
    });
    const results: ExportResult[] = [];
    exporter.export(METRICS, (r) => results.push(r));
    await sleep(150);
    expect(results).to.have.length(1);
    expect(results[0]?.code).to.equal(ExportResultCode.FAILED);
    expect(counted).to.deep.equal([false]);
    expect(logger.lines).to.deep.equal([
      "WARN OTLP push to http://collector:4318/v1/metrics failing: no complete answer within the export timeout (50 ms)",
    ]);
    inner.pending[0]?.({ code: ExportResultCode.SUCCESS });
    expect(results).to.have.length(1);
    expect(counted).to.deep.equal([false]);
    expect(exporter.failing).to.equal(true);

    // The next export that succeeds in time ends the outage, logged once.
    exporter.export(METRICS, (r) => results.push(r));
    inner.pending[1]?.({ code: ExportResultCode.SUCCESS });
    expect(counted).to.deep.equal([false, true]);
    expect(logger.lines.at(-1)).to.equal(
      "INFO OTLP push to http://collector:4318/v1/metrics recovered after 1 failed export",
    );
  });

  it("masks secrets in the reason a library gives", () => {
    const inner = new HeldExporter();
    const logger = createMemoryLogger();
    const exporter = new MonitoredExporter(inner, {
      target: "https://***@collector:4318/v1/metrics",
      logger,
      deadlineMs: 10_000,
      secrets: ["hunter2 pw", "tok"],
    });
    exporter.export(METRICS, () => undefined);
    inner.pending[0]?.({
      code: ExportResultCode.FAILED,
      error: new Error("rejected hunter2 pw and hunter2%20pw, tok"),
    });
    expect(logger.lines).to.deep.equal([
      "WARN OTLP push to https://***@collector:4318/v1/metrics failing: rejected *** and ***, tok",
    ]);
  });
});
