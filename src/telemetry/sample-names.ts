import type { MetricType } from "../catalog/types.js";

/**
 * The names a family takes in the exposition under its TorchServe name: its own (HELP, TYPE and a
 * counter's or gauge's samples) and a histogram's `_bucket`, `_count` and `_sum` (the TorchServe
 * renderer writes counters without `_total`). The family's own name counts too: a parser files
 * `# HELP X_count` under an earlier histogram X, as a second HELP line of X.
 */
export function torchServeSampleNames(name: string, type: MetricType): string[] {
  return type === "histogram" ? [name, `${name}_bucket`, `${name}_count`, `${name}_sum`] : [name];
}

/**
 * The names exporter-prometheus gives an instrument's family and samples (metrics_format=otel): every
 * character outside `[a-zA-Z0-9_]` becomes `_`, runs of `_` collapse to one, a leading digit gets
 * a `_`, counters end in `_total`, histograms add `_bucket`, `_count` and `_sum`.
 */
export function otelSampleNames(instrumentName: string, type: MetricType): string[] {
  let name = instrumentName.replace(/[^a-zA-Z0-9_]/g, "_").replace(/_{2,}/g, "_");
  if (/^[0-9]/.test(name)) name = `_${name}`;
  if (type === "counter" && !name.endsWith("_total")) name = `${name}_total`;
  return torchServeSampleNames(name, type);
}

/** Sample names already rendered, each with the family that renders it. */
export class SampleNameOwners {
  private readonly owners = new Map<string, string>();

  /** The first of `samples` another family already renders, with that family; undefined if none. */
  clash(samples: readonly string[]): { sample: string; family: string } | undefined {
    for (const sample of samples) {
      const family = this.owners.get(sample);
      if (family !== undefined) return { sample, family };
    }
    return undefined;
  }

  /** Records that `family` renders `samples` (a name already owned keeps its first owner). */
  claim(family: string, samples: readonly string[]): void {
    for (const sample of samples) if (!this.owners.has(sample)) this.owners.set(sample, family);
  }
}
