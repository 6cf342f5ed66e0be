import { expect } from "chai";
import type { ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { createMemoryLogger } from "../../src/log.js";
import { Listener } from "../../src/parts/listener.js";

/** A raw client: what it received, and a promise for the server closing it. */
interface Client {
  socket: Socket;
  received: () => string;
  closed: Promise<void>;
}

function client(port: number, bytes: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    let received = "";
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(bytes);
      resolve({ socket, received: () => received, closed });
    });
    const closed = new Promise<void>((done) => socket.once("close", () => done()));
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (received += chunk));
    socket.on("error", reject);
  });
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.destroy();
      resolve(false);
    });
    socket.on("error", () => resolve(true));
  });
}

const GET = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

describe("a listener's drain and stop", () => {
  let listener: Listener;
  let held: ServerResponse[];
  let port: number;
  const responses: number[] = [];

  beforeEach(async () => {
    held = [];
    listener = new Listener({
      name: "test API",
      address: { protocol: "http", host: "127.0.0.1", port: 0 },
      tls: undefined,
      // `/hold` is answered only when the test says so; everything else at once.
      handler: (req, res) => {
        if (req.url === "/hold") held.push(res);
        else res.end("ok");
      },
      onClientErrorResponse: (status) => responses.push(status),
      logger: createMemoryLogger(),
    });
    await listener.start();
    port = listener.server?.port ?? 0;
  });

  afterEach(() => listener.stop());

  it("stops accepting, lets a response in flight finish with Connection: close, then resolves", async () => {
    const busy = await client(port, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const drained = listener.drain(performance.now() + 60_000);
    expect(await refused(port)).to.equal(true);
    held[0]?.end("late but whole");
    await drained;
    await busy.closed;
    expect(busy.received())
      .to.match(/^HTTP\/1\.1 200 OK\r\n/)
      .and.to.include("Connection: close\r\n");
    expect(busy.received()).to.match(/late but whole$/);
    expect(listener.inFlight()).to.equal(0);
  });

  it("does not wait for an idle keep-alive connection or half-sent headers, and stop() ends both", async () => {
    const idle = await client(port, GET);
    while (!idle.received().endsWith("ok")) await new Promise((resolve) => setTimeout(resolve, 5));
    const half = await client(port, "GET / HTTP/1.1\r\nHo");
    const started = performance.now();
    await listener.drain(performance.now() + 60_000);
    expect(performance.now() - started).to.be.below(30_000);
    await listener.stop();
    await Promise.all([idle.closed, half.closed]);
  });

  it("gives a response that never ends the drain time, and stop() cuts it", async () => {
    const busy = await client(port, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    held[0]?.write("");
    await listener.drain(performance.now() + 100);
    expect(listener.inFlight()).to.equal(1);
    await listener.stop();
    await busy.closed;
    expect(listener.inFlight()).to.equal(0);
  });
});
