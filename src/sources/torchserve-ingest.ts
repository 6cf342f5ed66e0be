import type { MetricRecorder } from "../telemetry/recorder.js";
import { modelOfAccess } from "./access-model.js";
import {
  MODEL_METRICS_ONLY,
  type IngestOutcome,
  type LinePermission,
  type LineSource,
  type MetricLineIngest,
} from "./metric-ingest.js";
import { classifyTorchServeLine, type AccessRecord, type TorchServeFile } from "./torchserve-line.js";

/**
 * What a record of TorchServe's frontend (TS_METRICS, ts_metrics.log) may write: any declared or
 * auto-detected metric but the service's own `serve_*` families. The frontend itself writes
 * Requests2XX, the `ts_*` counters, the host's and GPUs' metrics, WorkerLoadTime...
 */
export const TORCHSERVE_FRONTEND_RECORDS: LinePermission = (def) => !def.name.startsWith("serve_");

/** The outcome of one TorchServe record, and which kind it was (`malformed`: its kind was unclear). */
export type TorchServeIngestOutcome = IngestOutcome & { record: "metric" | "access" | "malformed" };

/** What {@link TorchServeLineIngest} needs. */
export interface TorchServeLineIngestOptions {
  /** Applies metric records (and counts rejected lines). */
  ingest: MetricLineIngest;
  recorder: Pick<MetricRecorder, "recordAccess">;
  /** Most model versions the access log may add series for; default 1000. */
  maxAccessModels?: number;
}

/**
 * Applies TorchServe's log lines with TorchServe's semantics: metric records go to the
 * {@link MetricLineIngest} (frontend records with {@link TORCHSERVE_FRONTEND_RECORDS}, backend
 * records and worker lines with model metrics only), access records to `recordAccess` per model
 * version, never to Requests2XX/4XX/5XX (TorchServe's own TS_METRICS lines count those). A broken
 * record is counted in serve_metric_lines_rejected_total as malformed and logged (bounded).
 */
export class TorchServeLineIngest {
  /** Model versions seen in the access log, in `model\0version` form. */
  private readonly models = new Set<string>();
  private readonly maxAccessModels: number;

  constructor(private readonly options: TorchServeLineIngestOptions) {
    this.maxAccessModels = options.maxAccessModels ?? 1000;
  }

  /**
   * Applies one line; `hint` names the TorchServe file it was read from, if any. Undefined for a
   * line that is no record (another logger's, plain text).
   */
  apply(text: string, source: LineSource, hint?: TorchServeFile): TorchServeIngestOutcome | undefined {
    const line = classifyTorchServeLine(text, hint);
    switch (line.kind) {
      case "ignored":
        return undefined;
      case "malformed":
        return {
          ...this.options.ingest.rejectLine(source, "malformed", line.reason, text),
          record: "malformed",
        };
      case "metric": {
        const permission = line.origin === "ts_metrics" ? TORCHSERVE_FRONTEND_RECORDS : MODEL_METRICS_ONLY;
        return { ...this.options.ingest.apply(line.payload, source, permission), record: "metric" };
      }
      case "access":
        return { ...this.applyAccess(line.access, source, text), record: "access" };
    }
  }

  private applyAccess(access: AccessRecord, source: LineSource, text: string): IngestOutcome {
    const target = modelOfAccess(access);
    // Management, ping and metrics calls, gRPC: a valid record that no model ran. A 404 is
    // TorchServe's "no such model": recordAccess records nothing for it (as the frontend does), and
    // a made-up name in a client's URI must not take one of the model versions' places either.
    if (target === undefined || access.status === 404) return { ok: true };
    const key = `${target.model}\u0000${target.version}`;
    if (!this.models.has(key)) {
      if (this.models.size >= this.maxAccessModels) return this.full(source, text);
      this.models.add(key);
    }
    this.options.recorder.recordAccess({
      model: target.model,
      version: target.version,
      status: access.status,
      // The clock going back makes TorchServe print a negative time; no request took less than 0.
      latencyMs: Math.max(0, access.ms),
    });
    return { ok: true };
  }

  /** Refuses an access record of one model version too many (counted, and logged like any rejected line). */
  private full(source: LineSource, text: string): IngestOutcome {
    return this.options.ingest.rejectLine(
      source,
      "invalid",
      `more than ${this.maxAccessModels} model versions in the access log; further ones are not recorded`,
      text,
    );
  }
}
