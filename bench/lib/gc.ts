import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

// --expose-gc set at run time puts `gc` on contexts created afterwards, not on the running one,
// so a fresh context hands it over; the benchmark need not be started with the flag.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Runs full garbage collections until the heap stops shrinking (weak references take a second pass). */
export function forceGc(): void {
  let before = Infinity;
  for (let i = 0; i < 5; i++) {
    gc();
    const used = process.memoryUsage().heapUsed;
    if (used >= before - 64 * 1024) return;
    before = used;
  }
}
