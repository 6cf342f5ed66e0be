import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { expect } from "chai";
import fc from "fast-check";
import type { MetricType } from "../../src/catalog/types.js";
import { renderOtelText } from "../../src/exposition/otel-text.js";
import { PullReader } from "../../src/exposition/pull-reader.js";
import { createCatalogInstrument } from "../../src/telemetry/instruments.js";
import {
  otelSampleNames,
  SampleNameOwners,
  torchServeSampleNames,
} from "../../src/telemetry/sample-names.js";

/** The names exporter-prometheus really writes for one instrument with one series: HELP's and the samples'. */
async function renderedNames(instrumentName: string, type: MetricType): Promise<string[]> {
  const reader = new PullReader();
  const provider = new MeterProvider({ readers: [reader] });
  const def = {
    name: "X",
    type,
    unit: "Count",
    dimensions: [],
    section: "model_metrics" as const,
    buckets: [1],
  };
  createCatalogInstrument(provider.getMeter("m"), def, { name: instrumentName, unit: "{count}" }).record(
    1,
    {},
  );
  const text = renderOtelText((await reader.collect()).resourceMetrics);
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    if (line.startsWith("# HELP ")) names.add(line.split(" ")[2] ?? "");
    else if (line !== "" && !line.startsWith("#")) names.add(line.split(/[{ ]/)[0] ?? "");
  }
  return [...names].sort();
}

describe("sample names", () => {
  it("gives a TorchServe family's own name, and a histogram's _bucket, _count and _sum", () => {
    expect(torchServeSampleNames("G", "gauge")).to.deep.equal(["G"]);
    expect(torchServeSampleNames("C", "counter")).to.deep.equal(["C"]);
    expect(torchServeSampleNames("H", "histogram")).to.deep.equal(["H", "H_bucket", "H_count", "H_sum"]);
  });

  it("predicts exactly the names exporter-prometheus renders for any instrument name and type", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.stringMatching(/^[A-Za-z][A-Za-z0-9_.\-/]{0,20}$/),
        fc.constantFrom<MetricType>("counter", "gauge", "histogram"),
        async (name, type) => {
          expect(await renderedNames(name, type)).to.deep.equal([...otelSampleNames(name, type)].sort());
        },
      ),
      { numRuns: 300 },
    );
  });

  it("names the first family that owns a clashing name, and keeps first owners", () => {
    const owners = new SampleNameOwners();
    owners.claim("H", torchServeSampleNames("H", "histogram"));
    owners.claim("Other", ["H_count", "Z"]);
    expect(owners.clash(["A", "H_count"])).to.deep.equal({ sample: "H_count", family: "H" });
    expect(owners.clash(["Z"])).to.deep.equal({ sample: "Z", family: "Other" });
    expect(owners.clash(["A", "B"])).to.equal(undefined);
  });
});
