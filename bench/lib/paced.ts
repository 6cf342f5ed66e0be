import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";

/** What a paced run measured. */
export interface PacedResult {
  /** Send to last response byte, in milliseconds, one per 2xx response. */
  latenciesMs: number[];
  /** Requests that failed or answered other than 2xx. */
  errors: number;
  /** Responses per second actually achieved. */
  rate: number;
}

/**
 * An open-loop load: `rate` requests per second sent evenly over `durationMs` (the due ones every
 * millisecond), whether or not earlier ones have come back, on at most `connections` keep-alive
 * connections. Unlike autocannon's `overallRate`, which lets each connection send its quota for the
 * second back to back and then pause, the load never bunches up, so latency is not queueing.
 */
export async function pacedLoad(
  url: string,
  options: { rate: number; durationMs: number; connections: number; method: string; body: string },
): Promise<PacedResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const latenciesMs: number[] = [];
  let errors = 0;
  const inFlight = new Set<Promise<void>>();
  const send = (): void => {
    const started = performance.now();
    const done = new Promise<void>((resolve) => {
      const req = request(
        url,
        {
          agent,
          method: options.method,
          headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(options.body) },
        },
        (res) => {
          res.resume();
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) latenciesMs.push(performance.now() - started);
            else errors++;
            resolve();
          });
          res.on("error", () => {
            errors++;
            resolve();
          });
        },
      );
      req.on("error", () => {
        errors++;
        resolve();
      });
      req.end(options.body);
    });
    inFlight.add(done);
    void done.then(() => inFlight.delete(done));
  };
  const start = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const elapsed = performance.now() - start;
      if (elapsed >= options.durationMs) {
        resolve();
        return;
      }
      const due = Math.floor((elapsed * options.rate) / 1000) - sent;
      for (let i = 0; i < due; i++) send();
      sent += Math.max(0, due);
      setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(inFlight);
  agent.destroy();
  return { latenciesMs, errors, rate: (latenciesMs.length * 1000) / (performance.now() - start) };
}
