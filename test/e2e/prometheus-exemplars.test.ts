import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MetricsService } from "../../src/service.js";
import { until } from "../support/net.js";
import {
  apiGet,
  instantQuery,
  startPrometheus,
  waitForScrapes,
  type RunningPrometheus,
} from "../support/prometheus.js";
import { startTestService } from "../support/service.js";
import { requireTool } from "../support/tools.js";

const ECHO = "node test/fixtures/workers/echo-worker.js --port {port}";
const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";
const SPAN_ID = "b7ad6b7169203331";
const SLOW = { traceId: "5a4d0c8c6f3e4b1a9d2e7f60718293a4", spanId: "1b2c3d4e5f607182" };
const MIXED_FAST = { traceId: "6a4d0c8c6f3e4b1a9d2e7f60718293a5", spanId: "2b2c3d4e5f607183" };
const MIXED_SLOW = { traceId: "7a4d0c8c6f3e4b1a9d2e7f60718293a6", spanId: "3b2c3d4e5f607184" };

/** One series' exemplars as `GET /api/v1/query_exemplars` returns them. */
interface ExemplarSeries {
  seriesLabels: Record<string, string>;
  exemplars: { labels: Record<string, string>; value: string; timestamp: number }[];
}

function post(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: "POST", headers, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end("x");
  });
}

for (const native of [true, false]) {
  describe(`Debian's Prometheus storing exemplars (exemplar-storage, native-histograms), ${native ? "native and classic buckets" : "classic buckets only (native_histograms empty)"}`, function () {
    this.timeout(90_000);
    let service: MetricsService;
    let prometheus: RunningPrometheus | undefined;
    let dir: string | undefined;

    before(async function () {
      const binary = requireTool(this, "prometheus");
      let metricsUrl: string;
      ({ service, url: metricsUrl } = await startTestService(
        {
          models: [
            { model: "echo", version: "1.0", isDefault: true, workers: 1, url: undefined, command: ECHO },
          ],
          inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
          disableSystemMetrics: true,
          ...(native ? {} : { nativeHistograms: [] }),
        },
        { workerTimings: { backoff: { initialMs: 100, maxMs: 400 }, stopGraceMs: 1000 } },
      ));
      await service.workersReady();
      const status = await post(`${service.inferenceUrl ?? ""}/predictions/echo`, {
        traceparent: `00-${TRACE_ID}-${SPAN_ID}-01`,
      });
      expect(status).to.equal(200);
      // Slower than the last bound: its exemplar brings the +Inf bucket into the protobuf.
      service.recordInference({ model: "slow", status: 200, latencyMs: 60_000, trace: SLOW });
      // A fast traced request, then a slow one, of the same series.
      service.recordInference({ model: "mixed", status: 200, latencyMs: 8, trace: MIXED_FAST });
      service.recordInference({ model: "mixed", status: 200, latencyMs: 2_000, trace: MIXED_SLOW });
      dir = mkdtempSync(join(tmpdir(), "prom-exemplars-"));
      writeFileSync(
        join(dir, "prometheus.yml"),
        `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: serve-metrics\n    static_configs:\n      - targets: ["${new URL(metricsUrl).host}"]\n`,
      );
      prometheus = await startPrometheus(binary, join(dir, "prometheus.yml"), dir, [
        "--enable-feature=native-histograms,exemplar-storage",
      ]);
      await waitForScrapes(prometheus, "serve-metrics", 2);
    });

    after(async () => {
      await prometheus?.stop();
      await service.stop();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    const exemplars = async (query: string): Promise<ExemplarSeries[]> => {
      const end = Date.now() / 1000 + 60;
      return apiGet<ExemplarSeries[]>(
        prometheus?.api ?? "",
        `/query_exemplars?query=${encodeURIComponent(query)}&start=${end - 3600}&end=${end}`,
      );
    };

    it("returns the request's trace id from the latency histogram and the response counter", async () => {
      let latency: ExemplarSeries[] = [];
      await until(async () => {
        latency = await exemplars('{__name__=~"serve_request_duration_seconds(_bucket)?",model_name="echo"}');
        return latency.length > 0;
      }, "an exemplar of serve_request_duration_seconds");
      const traced = latency.flatMap((s) => s.exemplars.map((e) => ({ series: s.seriesLabels, ...e })));
      expect(traced.map((e) => e.labels)).to.deep.equal([{ trace_id: TRACE_ID, span_id: SPAN_ID }]);
      const [one] = traced;
      if (native) {
        // 2.42 stores a histogram with native buckets as one native series, and files the exemplars
        // of its classic buckets under that series.
        expect(one?.series.__name__).to.equal("serve_request_duration_seconds");
      } else {
        // Under the bucket's series: its `le` is the first bound at or above the value.
        expect(one?.series.__name__).to.equal("serve_request_duration_seconds_bucket");
        expect(Number(one?.value)).to.be.at.most(Number(one?.series.le));
      }
      expect(Number(one?.value)).to.be.greaterThan(0);
      expect(one?.series.model_version).to.equal("default");

      const responses = await exemplars('serve_inference_responses_total{model_name="echo"}');
      expect(
        responses.map((s) => [
          s.seriesLabels.status_class,
          s.exemplars.map((e) => [e.labels.trace_id, e.value]),
        ]),
      ).to.deep.equal([["2XX", [[TRACE_ID, "1"]]]]);
    });

    it("stores an exemplar of the +Inf bucket, whose series is the one the text makes", async () => {
      let slow: ExemplarSeries[] = [];
      await until(async () => {
        slow = await exemplars('{__name__=~"serve_request_duration_seconds(_bucket)?",model_name="slow"}');
        return slow.length > 0;
      }, "an exemplar of the slow request");
      expect(
        slow.map((s) => [s.seriesLabels.le, s.exemplars.map((e) => [e.labels.trace_id, e.value])]),
      ).to.deep.equal([[native ? undefined : "+Inf", [[SLOW.traceId, "60"]]]]);
      // The same bucket series, each `le` once, as a histogram whose +Inf bucket is not written.
      const buckets = async (model: string): Promise<[string | undefined, string][]> =>
        (
          await instantQuery(
            prometheus?.api ?? "",
            `count by (le) (serve_request_duration_seconds_bucket{model_name="${model}"})`,
          )
        )
          .map((b): [string | undefined, string] => [b.metric.le, b.value[1]])
          .sort(([a], [b]) => Number(a) - Number(b));
      const slowBuckets = await buckets("slow");
      // (echo has two series per `le`: its configured version 1.0, known from the start, and default.)
      expect(slowBuckets.map(([le]) => le)).to.deep.equal((await buckets("echo")).map(([le]) => le));
      if (native) expect(slowBuckets).to.deep.equal([]);
      else expect(slowBuckets.map(([le]) => le)).to.include("+Inf");
      if (!native) expect(slowBuckets.every(([, n]) => n === "1")).to.equal(true);
    });

    it(`keeps ${native ? "the newest exemplar of a native histogram, not its lowest bucket's" : "each bucket's exemplar"}`, async () => {
      let mixed: ExemplarSeries[] = [];
      await until(async () => {
        mixed = await exemplars('{__name__=~"serve_request_duration_seconds(_bucket)?",model_name="mixed"}');
        return mixed.length > 0;
      }, "an exemplar of the mixed model");
      const traces = mixed.flatMap((s) => s.exemplars.map((e) => e.labels.trace_id)).sort();
      // 2.42 keeps one exemplar per native histogram and scrape: the newest, the slow request's,
      // is the one written on a bucket (the lowest bucket's, the fast one's, before).
      expect(traces).to.deep.equal(
        native ? [MIXED_SLOW.traceId] : [MIXED_FAST.traceId, MIXED_SLOW.traceId].sort(),
      );
    });

    it("returns TorchServe's requestID from the handler-time histogram", async () => {
      let handler: ExemplarSeries[] = [];
      await until(async () => {
        handler = await exemplars('{__name__=~"serve_handler_time_seconds(_bucket)?",model_name="echo"}');
        return handler.length > 0;
      }, "an exemplar of serve_handler_time_seconds");
      // The echo worker prints its HandlerTime line with request id `req-1`.
      expect(handler.flatMap((s) => s.exemplars.map((e) => e.labels))).to.deep.equal([
        { request_id: "req-1" },
      ]);
    });
  });
}
