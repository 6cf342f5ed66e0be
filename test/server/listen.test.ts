import { expect } from "chai";
import { readFileSync } from "node:fs";
import type { RequestListener } from "node:http";
import { connect, type Socket } from "node:net";
import {
  answerClientErrors,
  DEFAULT_LIMITS,
  listen,
  type ListeningServer,
  type TlsFiles,
} from "../../src/server/listen.js";
import {
  fingerprintOf,
  makeCertificate,
  servedFingerprint,
  type CertificateFiles,
} from "../support/certificates.js";
import { request } from "../support/http.js";
import { until } from "../support/net.js";
import { tempDir } from "../support/temp.js";
import { requireTool } from "../support/tools.js";

/** A raw TCP client and what it saw. */
interface RawClient {
  socket: Socket;
  reply: string;
  /** The server ended or closed the connection. */
  closed: boolean;
}

const LIMITS = {
  headersTimeoutMs: 300,
  requestTimeoutMs: 600,
  keepAliveTimeoutMs: 200,
  maxConnections: 2,
  tlsHandshakeTimeoutMs: 300,
};

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

describe("listen() on https against clients that never finish a handshake", function () {
  this.timeout(20_000);
  let files: TlsFiles;
  let certs: CertificateFiles;
  let server: ListeningServer | undefined;
  const statuses: number[] = [];

  before(function () {
    requireTool(this, "openssl");
    certs = makeCertificate(tempDir("listen-tls-"), "a");
    files = { cert: readFileSync(certs.cert), key: readFileSync(certs.key) };
  });

  /** An https server with a cap of 3 connections and the given handshake deadline. */
  async function serveHttps(
    tlsHandshakeTimeoutMs: number,
    handler: RequestListener = (_q, r) => r.end("ok"),
  ) {
    statuses.length = 0;
    server = await listen({ protocol: "https", host: "127.0.0.1", port: 0 }, handler, files, {
      ...DEFAULT_LIMITS,
      maxConnections: 3,
      tlsHandshakeTimeoutMs,
    });
    answerClientErrors(server.server, (status) => statuses.push(status));
    return server;
  }
  afterEach(async () => {
    await server?.close(0);
    server = undefined;
  });

  /** Raw TCP clients that connect and then send `bytes` (nothing when empty), held open. */
  async function rawClients(port: number, count: number, bytes = ""): Promise<RawClient[]> {
    const clients = Array.from({ length: count }, () => {
      const client: RawClient = {
        socket: connect({ port, host: "127.0.0.1", allowHalfOpen: true }),
        reply: "",
        closed: false,
      };
      client.socket.on("data", (d: Buffer) => (client.reply += d.toString("latin1")));
      client.socket.on("error", () => undefined);
      // Half-open clients: the server's end of the connection is what counts.
      client.socket.on("end", () => (client.closed = true));
      client.socket.on("close", () => (client.closed = true));
      client.socket.on("connect", () => {
        if (bytes !== "") client.socket.write(bytes);
      });
      return client;
    });
    await until(() => clients.every((c) => !c.socket.connecting), "the raw clients to connect");
    return clients;
  }

  const get = (port: number) => request(`https://127.0.0.1:${port}/`, { ca: files.cert });

  it("destroys idle pre-handshake connections, more than the cap, at the deadline, counting nothing", async () => {
    const { port } = await serveHttps(300);
    const idle = await rawClients(port, 6);
    await until(() => idle.every((c) => c.closed), "every idle client to be closed");
    await until(() => server?.openSockets() === 0, "the server to hold no socket");
    for (const c of idle) expect(c.reply).to.equal("");
    const after = await get(port);
    expect([after.status, after.body]).to.deep.equal([200, "ok"]);
    expect(statuses).to.deep.equal([]);
  });

  it("serves again at once when pre-handshake clients beyond the cap leave, and keeps no socket", async () => {
    // A deadline far away: what frees the places is the clients leaving, not the timer.
    const { port } = await serveHttps(60_000);
    const idle = await rawClients(port, 6);
    await until(() => server?.openSockets() === 3, "the cap to be reached");
    for (const c of idle) c.socket.destroy();
    await until(() => server?.openSockets() === 0, "the server to let go of every socket");
    const after = await get(port);
    expect(after.status).to.equal(200);
    const count = await new Promise<number>((resolve, reject) =>
      server?.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
    );
    expect(count).to.be.at.most(1);
    expect(statuses).to.deep.equal([]);
  });

  it("closes garbage and plain HTTP on the https port without an HTTP answer or a count", async () => {
    const { port } = await serveHttps(60_000);
    const clients = [
      ...(await rawClients(port, 2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
      ...(await rawClients(port, 2, "\u0016\u0003\u0001\u0000\u0005garbage-after-a-record-header")),
    ];
    await until(() => clients.every((c) => c.closed), "every garbage client to be closed");
    for (const c of clients) expect(c.reply).not.to.include("HTTP/1.1");
    await until(() => server?.openSockets() === 0, "the server to hold no socket");
    expect(statuses).to.deep.equal([]);
    expect((await get(port)).status).to.equal(200);
  });

  it("ends a handshake that drips one byte at a time at the deadline, not at its last byte", async () => {
    const { port } = await serveHttps(500);
    const [client] = await rawClients(port, 1);
    // A ClientHello record header announcing 512 bytes, then one byte every 100 ms: 50 s in all.
    const hello = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), Buffer.alloc(507, 1)]);
    let sent = 0;
    const drip = setInterval(() => {
      if (client === undefined || client.closed || sent >= hello.length) return;
      client.socket.write(hello.subarray(sent, sent + 1));
      sent += 1;
    }, 100);
    try {
      await until(() => client?.closed === true, "the dripping client to be closed");
    } finally {
      clearInterval(drip);
    }
    expect(sent).to.be.below(hello.length);
    expect(statuses).to.deep.equal([]);
  });

  it("close() ends a client held before its handshake at once, whatever the grace", async () => {
    const { port } = await serveHttps(60_000);
    const [held] = await rawClients(port, 1);
    await until(() => server?.openSockets() === 1, "the server to see the held client");
    // The test's own timeout (20 s) is far below this grace: close() must not wait for it.
    await server?.close(600_000);
    await until(() => held?.closed === true, "the held client to be closed");
    server = undefined;
  });

  it("close() destroys a connection whose request is still in flight after the grace", async () => {
    let arrived = false;
    const { port } = await serveHttps(60_000, () => (arrived = true)); // never answers
    const pending = get(port).then(
      () => "answered",
      (err: unknown) => (err as NodeJS.ErrnoException).code,
    );
    await until(() => arrived, "the request to arrive");
    await server?.close(200);
    server = undefined;
    expect(await pending).to.equal("ECONNRESET");
  });

  it("serves a replaced certificate to new connections", async () => {
    const { port } = await serveHttps(60_000);
    expect(await servedFingerprint(port)).to.equal(fingerprintOf(certs.cert));
    const other = makeCertificate(tempDir("listen-tls-"), "b");
    server?.replaceTls({ cert: readFileSync(other.cert), key: readFileSync(other.key) });
    expect(await servedFingerprint(port)).to.equal(fingerprintOf(other.cert));
  });

  it("refuses a suite without forward secrecy (AES128-SHA) unless tls_ciphers asks for it", async () => {
    const { port } = await serveHttps(60_000);
    const refusal = await servedFingerprint(port, { ciphers: "AES128-SHA" }).then(
      () => "accepted",
      (err: unknown) => (err as Error).message,
    );
    expect(refusal).to.match(/handshake failure|no shared cipher|alert/i);
    expect(await servedFingerprint(port, { ciphers: "ECDHE-RSA-AES128-GCM-SHA256" })).to.equal(
      fingerprintOf(certs.cert),
    );
    await server?.close(0);
    server = await listen({ protocol: "https", host: "127.0.0.1", port: 0 }, (_q, r) => r.end("ok"), {
      ...files,
      ciphers: "AES128-SHA",
    });
    expect(await servedFingerprint(server.port, { ciphers: "AES128-SHA" })).to.equal(
      fingerprintOf(certs.cert),
    );
  });
});

describe("answerClientErrors when a response has begun", function () {
  this.timeout(10_000);
  let server: ListeningServer;
  const statuses: number[] = [];

  async function serve(handler: RequestListener): Promise<void> {
    statuses.length = 0;
    server = await listen({ protocol: "http", host: "127.0.0.1", port: 0 }, handler, undefined, LIMITS);
    answerClientErrors(server.server, (status) => statuses.push(status));
  }
  afterEach(() => server.close(0));

  /** Starts a chunked upload that sends one chunk every 100 ms and never ends; what came back. */
  function endlessUpload(port: number): Promise<string> {
    return new Promise((resolve) => {
      const socket = connect(port, "127.0.0.1", () =>
        socket.write("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
      );
      const drip = setInterval(() => socket.write("5\r\nhello\r\n"), 100);
      let reply = "";
      socket.on("data", (d: Buffer) => (reply += d.toString("latin1")));
      socket.on("error", () => undefined);
      socket.on("close", () => {
        clearInterval(drip);
        resolve(reply);
      });
    });
  }

  it("cuts, and does not answer 408 inside, a 200 that is streaming when the upload times out", async () => {
    await serve((_req, res) => {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.write("hello\n");
    });
    const reply = await endlessUpload(server.port);
    expect(reply).to.match(/^HTTP\/1\.1 200 /);
    expect(reply).to.include("hello");
    expect(reply).not.to.include("408");
    expect(statuses).to.deep.equal([]);
  });

  it("writes no 408 after a 200 that was complete before the upload timed out", async () => {
    await serve((_req, res) => res.end("done"));
    const reply = await endlessUpload(server.port);
    expect(reply).to.match(/^HTTP\/1\.1 200 /);
    expect(reply).not.to.include("408");
    expect(statuses).to.deep.equal([]);
  });

  it("writes no 408 into a streaming answer to an earlier pipelined request", async () => {
    await serve((req, res) => {
      if (req.method !== "GET") return; // the upload behind it waits for its body
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.write("hello\n");
    });
    const reply = await new Promise<string>((resolve) => {
      const socket = connect(server.port, "127.0.0.1", () =>
        socket.write(
          "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n" +
            "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        ),
      );
      let text = "";
      socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
      socket.on("error", () => undefined);
      socket.on("close", () => resolve(text));
    });
    expect(reply).to.match(/^HTTP\/1\.1 200 /);
    expect(reply).not.to.include("408");
    expect(statuses).to.deep.equal([]);
  });

  it("answers 408, counted once, when the handler waits for the body that never comes", async () => {
    await serve(() => undefined);
    const reply = await endlessUpload(server.port);
    expect(reply).to.match(/^HTTP\/1\.1 408 /);
    expect(statuses).to.deep.equal([408]);
  });

  it("answers 408 to a slow second request on a keep-alive connection whose first was answered", async () => {
    await serve((_req, res) => res.end("first"));
    const reply = await exchange(
      server.port,
      "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n",
    );
    expect(reply.reply).to.match(/^HTTP\/1\.1 200 [^]*first[^]*HTTP\/1\.1 408 /);
    expect(statuses).to.deep.equal([408]);
  });
});
