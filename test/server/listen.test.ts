import { expect } from "chai";
import { connect, type Socket } from "node:net";
import { answerClientErrors, listen, type ListeningServer } from "../../src/server/listen.js";

const LIMITS = { headersTimeoutMs: 300, requestTimeoutMs: 600, keepAliveTimeoutMs: 200, maxConnections: 2 };

/** Connects, sends `text`, and resolves with everything read until the server closes. */
function exchange(
  port: number,
  text: string,
  sockets: Socket[] = [],
): Promise<{ reply: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(text));
    sockets.push(socket);
    let reply = "";
    socket.on("data", (d) => (reply += d.toString()));
    socket.on("close", () => resolve({ reply, ms: Date.now() - started }));
    socket.on("error", reject);
  });
}

describe("listen() against slow and too many clients", function () {
  this.timeout(10_000);
  let server: ListeningServer;
  const statuses: number[] = [];

  beforeEach(async () => {
    statuses.length = 0;
    server = await listen(
      { protocol: "http", host: "127.0.0.1", port: 0 },
      (_req, res) => res.end("ok"),
      undefined,
      LIMITS,
    );
    answerClientErrors(server.server, (status) => statuses.push(status));
  });
  afterEach(() => server.close(0));

  it("answers 408 to a client that never finishes its headers (slowloris), and counts it", async () => {
    const { reply, ms } = await exchange(server.port, "GET / HTTP/1.1\r\nHost: x\r\n");
    expect(reply).to.match(/^HTTP\/1\.1 408 /);
    expect(ms).to.be.below(3000);
    expect(statuses).to.deep.equal([408]);
  });

  it("frees the connection after a 408 even when the client keeps its side open", async () => {
    // Clients that never close (allowHalfOpen) used to keep their place under maxConnections.
    const stalled = [0, 1].map(
      () =>
        new Promise<{ socket: Socket; reply: string }>((resolve) => {
          const socket = connect({ port: server.port, host: "127.0.0.1", allowHalfOpen: true }, () =>
            socket.write("GET / HTTP/1.1\r\nHost: x\r\n"),
          );
          let reply = "";
          socket.on("data", (d) => (reply += d.toString()));
          socket.on("end", () => resolve({ socket, reply }));
        }),
    );
    const held = await Promise.all(stalled);
    for (const { reply } of held) expect(reply).to.match(/^HTTP\/1\.1 408 /);
    const after = await exchange(server.port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(after.reply).to.match(/^HTTP\/1\.1 200 /);
    for (const { socket } of held) socket.destroy();
  });

  it("answers a request that is not HTTP with a 400 JSON error", async () => {
    const { reply } = await exchange(server.port, "NOT HTTP AT ALL\r\n\r\n");
    expect(reply).to.match(/^HTTP\/1\.1 400 /);
    const body = JSON.parse(reply.slice(reply.indexOf("\r\n\r\n") + 4)) as { code: number; type: string };
    expect(body).to.include({ code: 400, type: "BadRequestException" });
    expect(statuses).to.deep.equal([400]);
  });

  it("closes an idle keep-alive connection after keepAliveTimeoutMs", async () => {
    const { reply, ms } = await exchange(server.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(reply).to.match(/^HTTP\/1\.1 200 /);
    expect(ms).to.be.below(2000);
  });

  it("refuses connections beyond maxConnections while others are open", async () => {
    const held: Socket[] = [];
    const idle = [exchange(server.port, "", held), exchange(server.port, "", held)];
    await new Promise((r) => setTimeout(r, 100));
    const extra = await exchange(server.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(extra.reply).to.equal("");
    for (const s of held) s.destroy();
    await Promise.all(idle);
    const after = await exchange(server.port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(after.reply).to.match(/^HTTP\/1\.1 200 /);
  });
});
