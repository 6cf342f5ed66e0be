import { expect } from "chai";
import { createServer, get, type Server, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { writeChunks } from "../../src/server/write-chunks.js";

/** A loopback server whose every request is answered by `answer`; its URL and the server. */
async function serve(
  answer: (res: ServerResponse, method: string) => void,
): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => answer(res, req.method ?? "GET"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || address === null) throw new Error("no address");
  return { url: `http://127.0.0.1:${address.port}/`, server };
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe("writeChunks", () => {
  it("sends every chunk in order with a Content-Length summed from them, HEAD the headers only", async () => {
    const chunks = ["a\n", "bé\n", "", "c\n"].map((s) => Buffer.from(s));
    const results: boolean[] = [];
    const { url, server } = await serve((res, method) => {
      void writeChunks(res, 200, { "Content-Type": "text/plain" }, chunks, {
        headOnly: method === "HEAD",
      }).then((ok) => results.push(ok));
    });
    try {
      const got = await fetch(url);
      expect(got.headers.get("content-length")).to.equal("8");
      expect(await got.text()).to.equal("a\nbé\nc\n");
      const head = await fetch(url, { method: "HEAD" });
      expect(head.headers.get("content-length")).to.equal("8");
      expect(await head.text()).to.equal("");
      expect(results).to.deep.equal([true, true]);
    } finally {
      await close(server);
    }
  });

  it("sends a body longer than V8's longest string, since it never joins the chunks", async function () {
    this.timeout(60_000);
    const { MAX_STRING_LENGTH } = await import("node:buffer").then((b) => b.constants);
    // One 64 MiB buffer, nine times: more bytes than a string can hold, for 64 MiB of memory.
    const block = Buffer.alloc(64 * 1024 * 1024, "x");
    const chunks = Array.from({ length: Math.ceil(MAX_STRING_LENGTH / block.length) + 1 }, () => block);
    const total = chunks.length * block.length;
    expect(total).to.be.greaterThan(MAX_STRING_LENGTH);
    const { url, server } = await serve((res) => void writeChunks(res, 200, {}, chunks));
    try {
      const { length, received } = await new Promise<{ length: string | undefined; received: number }>(
        (resolve, reject) => {
          get(url, (res) => {
            let received = 0;
            res.on("data", (data: Buffer) => (received += data.length));
            res.on("end", () => resolve({ length: res.headers["content-length"], received }));
            res.on("error", reject);
          }).on("error", reject);
        },
      );
      expect(length).to.equal(String(total));
      expect(received).to.equal(total);
    } finally {
      await close(server);
    }
  });

  it("stops when the client goes away mid-body, resolving false and leaving no listener behind", async () => {
    const block = Buffer.alloc(1024 * 1024, "y");
    const chunks = Array.from({ length: 256 }, () => block);
    let response: ServerResponse | undefined;
    let listenersBefore = 0;
    let writing: Promise<boolean> | undefined;
    const { url, server } = await serve((res) => {
      response = res;
      listenersBefore = res.listenerCount("close") + res.listenerCount("drain");
      writing = writeChunks(res, 200, {}, chunks);
    });
    try {
      const { port } = new URL(url);
      await new Promise<void>((resolve, reject) => {
        const socket = connect(Number(port), "127.0.0.1", () =>
          socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        );
        socket.once("data", () => {
          // The headers and the first bytes are in: hang up with most of the 256 MiB unsent.
          socket.destroy();
          resolve();
        });
        socket.on("error", reject);
      });
      expect(await writing).to.equal(false);
      expect(response?.writableEnded).to.equal(false);
      expect(response?.destroyed).to.equal(true);
      expect((response?.listenerCount("close") ?? 0) + (response?.listenerCount("drain") ?? 0)).to.be.at.most(
        listenersBefore,
      );
    } finally {
      await close(server);
    }
  });

  it("closes the connection of a client that stops reading once the send timeout passes", async () => {
    // Far more than the socket buffers take, so the writing waits on a client that never reads.
    const block = Buffer.alloc(1024 * 1024, "z");
    const chunks = Array.from({ length: 64 }, () => block);
    let writing: Promise<boolean> | undefined;
    let response: ServerResponse | undefined;
    const { url, server } = await serve((res) => {
      response = res;
      writing = writeChunks(res, 200, {}, chunks, { timeoutMs: 300 });
    });
    const { port } = new URL(url);
    const socket = connect(Number(port), "127.0.0.1", () =>
      socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    socket.pause();
    try {
      while (writing === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(await writing).to.equal(false);
      expect(response?.destroyed).to.equal(true);
      expect(response?.writableEnded).to.equal(false);
    } finally {
      socket.destroy();
      await close(server);
    }
  });

  it("leaves a client that reads its answer in time alone, its kept-alive connection open", async () => {
    const chunks = [Buffer.from("fine\n")];
    const results: boolean[] = [];
    const sockets: (Socket | null)[] = [];
    const { url, server } = await serve((res) => {
      sockets.push(res.socket);
      void writeChunks(res, 200, {}, chunks, { timeoutMs: 200 }).then((ok) => results.push(ok));
    });
    try {
      const got = await fetch(url);
      expect(await got.text()).to.equal("fine\n");
      // Past the timeout, the kept-alive connection is still open.
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(sockets.map((socket) => socket?.destroyed)).to.deep.equal([false]);
      expect(results).to.deep.equal([true]);
    } finally {
      await close(server);
    }
  });
});
