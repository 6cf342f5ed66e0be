import { expect } from "chai";
import { appendFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import type { MetricsService } from "../../src/service.js";
import { PROTOBUF_CONTENT_TYPE } from "../../src/server/accept-format.js";
import { decodeMetricFamilies, type DecodedFamily } from "../support/metric-family.js";
import { until } from "../support/net.js";
import { startTestService } from "../support/service.js";
import { tempDir } from "../support/temp.js";

/** A log4j time stamp as TorchServe's metric files start each line with it. */
const T = "2026-11-28T09:30:01,123";
/** TorchServe's request ids are UUIDs (x-request-id's text where a client sent one). */
const REQUEST_ID = "c0b5b3a6-1f6d-4d0e-9b7a-5f2d5a1e7c11";

function scrapeProtobuf(url: string): Promise<DecodedFamily[]> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { Accept: PROTOBUF_CONTENT_TYPE }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve(decodeMetricFamilies(Buffer.concat(chunks))));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** `[model_name, request_id, value]` of each exemplar of a histogram family. */
function requestIds(families: DecodedFamily[], name: string): [string, string, number][] {
  const out: [string, string, number][] = [];
  for (const metric of families.find((f) => f.name === name)?.metric ?? []) {
    const model = metric.label.find((l) => l.name === "model_name")?.value ?? "";
    for (const b of metric.histogram?.bucket ?? []) {
      const e = b.exemplar;
      if (e) out.push([model, e.label.find((l) => l.name === "request_id")?.value ?? "", e.value]);
    }
  }
  return out;
}

describe("exemplars next to TorchServe (its model_metrics.log followed)", function () {
  this.timeout(30_000);
  let service: MetricsService;
  let url: string;
  let logs: string;

  before(async () => {
    logs = tempDir("ts-exemplars-");
    for (const name of ["ts_metrics.log", "model_metrics.log", "access_log.log", "ts_log.log"]) {
      writeFileSync(join(logs, name), "");
    }
    ({ service, url } = await startTestService({ torchserveLogDir: logs, disableSystemMetrics: true }));
  });
  after(() => service.stop());

  it("gives a HandlerTime record's requestID to serve_handler_time_seconds as an exemplar", async () => {
    appendFileSync(
      join(logs, "model_metrics.log"),
      [
        `${T} - HandlerTime.ms:71.39|#ModelName:mnist,Level:Model|#hostname:ts-host,requestID:${REQUEST_ID},timestamp:1780000000`,
        `${T} - HandlerTime.ms:2.0|#ModelName:quiet,Level:Model|#hostname:ts-host,requestID:null,timestamp:1780000000`,
        "",
      ].join("\n"),
    );
    let found: [string, string, number][] = [];
    await until(async () => {
      found = requestIds(await scrapeProtobuf(url), "serve_handler_time_seconds");
      return found.length > 0;
    }, "an exemplar on serve_handler_time_seconds");
    expect(found).to.deep.equal([["mnist", REQUEST_ID, 0.07139]]);
    const text = await new Promise<string>((resolve, reject) => {
      httpRequest(url, { agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => (body += d));
        res.on("end", () => resolve(body));
      })
        .on("error", reject)
        .end();
    });
    expect(text).to.include('HandlerTime{ModelName="mnist",Level="Model",Hostname="ts-host",} 71.39\n');
    expect(text).to.not.include(REQUEST_ID);
  });
});
