import { performance } from "node:perf_hooks";
import type { Logger } from "../log.js";

/**
 * One thing the service runs (a sampler, a follower, a server, the frontend, a writer, the push),
 * with one lifecycle: start, drain, stop. The service keeps them in a list in start order; a stop
 * drains every part at once and then stops them in reverse order (see {@link stopParts}).
 */
export interface ServicePart {
  /** Names the part in messages (`metrics API`, `inference API`). */
  readonly name: string;
  /**
   * What it does on its own, once started (`metrics API on http://…`), for the service's
   * `activities`; undefined for a part that only serves the others (a sampler).
   */
  activity(): string | undefined;
  /** Starts it; rejects when it cannot (the service then stops the parts already started). */
  start(): Promise<void>;
  /**
   * Takes no new work and finishes what is under way, by `deadline` (a `performance.now()` time);
   * resolves when done or at the deadline, whichever comes first. Absent: nothing to finish.
   */
  drain?(deadline: number): Promise<void>;
  /** Ends whatever is left and releases everything it holds; resolves when done. */
  stop(): Promise<void>;
}

/** The parts started so far, to be stopped by {@link stopParts}. */
export type StartedParts = ServicePart[];

/**
 * Starts the parts in order, adding each to `started` before it starts (so that one that fails
 * half way is stopped too). Rejects with the first failure; the caller stops `started`.
 */
export async function startParts(parts: readonly ServicePart[], started: StartedParts): Promise<void> {
  for (const part of parts) {
    started.push(part);
    await part.start();
  }
}

/**
 * The stop, in one place: every started part drains at once (servers stop accepting and finish
 * the requests in flight, the frontend answers its queue with 503 and lets dispatched requests
 * finish) until all are done or `drainMs` has passed; then the parts stop one by one in reverse
 * start order (servers cut what is left, workers stop, sources and writers close, and the OTLP
 * push, started first, makes its last export after everything was counted).
 */
export async function stopParts(started: StartedParts, drainMs: number, logger: Logger): Promise<void> {
  const parts = started.splice(0).reverse();
  const deadline = performance.now() + drainMs;
  const drains = Promise.all(
    parts.map(async (part) => {
      try {
        await part.drain?.(deadline);
      } catch (err) {
        logger.warn(`${part.name}: drain failed: ${describe(err)}`);
      }
    }),
  );
  // Each part ends its own drain at the deadline; this bound holds even for one that would not.
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, drainMs);
  });
  await Promise.race([drains, late]);
  clearTimeout(timer);
  for (const part of parts) {
    try {
      await part.stop();
    } catch (err) {
      // One part's failure must not keep the others running.
      logger.warn(`${part.name}: stop failed: ${describe(err)}`);
    }
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
