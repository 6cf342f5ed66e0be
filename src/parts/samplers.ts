import type { ProcessSampler } from "../sources/process-sampler.js";
import type { SystemSampler } from "../sources/system-sampler.js";
import type { ServicePart } from "./part.js";

/** A sampler as a part: its first sample is taken before start() resolves; stop() ends its timer. */
export class SamplerPart implements ServicePart {
  constructor(
    readonly name: string,
    private readonly sampler: SystemSampler | ProcessSampler,
  ) {}

  /** A sampler serves the other parts: it keeps nothing going on its own. */
  activity(): undefined {
    return undefined;
  }

  async start(): Promise<void> {
    await this.sampler.start();
  }

  /** Takes a sample now rather than at the next interval. */
  async sampleNow(): Promise<void> {
    await this.sampler.sampleNow();
  }

  stop(): Promise<void> {
    this.sampler.stop();
    return Promise.resolve();
  }
}
