import { expect } from "chai";
import { createMemoryLogger } from "../../src/log.js";
import { startParts, stopParts, type ServicePart, type StartedParts } from "../../src/parts/part.js";

/** A part that writes what happens to it into `events`. */
function part(
  name: string,
  events: string[],
  behaviour: { failStart?: boolean; failStop?: boolean; drainMs?: number } = {},
): ServicePart {
  return {
    name,
    activity: () => undefined,
    start: () => {
      events.push(`start ${name}`);
      return behaviour.failStart === true
        ? Promise.reject(new Error(`${name} cannot start`))
        : Promise.resolve();
    },
    // It takes drainMs, whatever the deadline says.
    drain: async () => {
      events.push(`drain ${name}`);
      await new Promise((resolve) => setTimeout(resolve, behaviour.drainMs ?? 0).unref());
      events.push(`drained ${name}`);
    },
    stop: () => {
      events.push(`stop ${name}`);
      return behaviour.failStop === true ? Promise.reject(new Error(`${name} stuck`)) : Promise.resolve();
    },
  };
}

describe("the service's parts", () => {
  it("start in order, drain all at once, then stop in reverse order", async () => {
    const events: string[] = [];
    const started: StartedParts = [];
    await startParts(
      [part("push", events), part("server", events, { drainMs: 30 }), part("follower", events)],
      started,
    );
    await stopParts(started, 1000, createMemoryLogger());
    expect(events).to.deep.equal([
      "start push",
      "start server",
      "start follower",
      // Every drain begins before any ends: one drain time for all.
      "drain follower",
      "drain server",
      "drain push",
      "drained follower",
      "drained push",
      "drained server",
      "stop follower",
      "stop server",
      "stop push",
    ]);
    expect(started).to.deep.equal([]);
  });

  it("end the drain at the deadline, even for a part that would take longer", async () => {
    const events: string[] = [];
    const started: StartedParts = [];
    await startParts([part("slow", events, { drainMs: 60_000 })], started);
    await stopParts(started, 50, createMemoryLogger());
    expect(events).to.deep.equal(["start slow", "drain slow", "stop slow"]);
  });

  it("a part that fails to start is stopped with those before it", async () => {
    const events: string[] = [];
    const started: StartedParts = [];
    const failing = startParts(
      [part("a", events), part("b", events, { failStart: true }), part("c", events)],
      started,
    );
    await failing.then(
      () => expect.fail("started"),
      (err: unknown) => expect((err as Error).message).to.equal("b cannot start"),
    );
    await stopParts(started, 0, createMemoryLogger());
    expect(events.filter((e) => e.startsWith("st"))).to.deep.equal([
      "start a",
      "start b",
      "stop b",
      "stop a",
    ]);
  });

  it("a part whose stop fails does not keep the others running, and is logged", async () => {
    const events: string[] = [];
    const started: StartedParts = [];
    const logger = createMemoryLogger();
    await startParts([part("a", events), part("b", events, { failStop: true })], started);
    await stopParts(started, 0, logger);
    expect(events.filter((e) => e.startsWith("stop"))).to.deep.equal(["stop b", "stop a"]);
    expect(logger.lines).to.deep.equal(["WARN b: stop failed: b stuck"]);
  });
});
