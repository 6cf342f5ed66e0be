/**
 * A model worker for the frontend benchmark, run as its own process: answers every request with a
 * small JSON prediction once the body is read, and nothing else, so that what differs between
 * runs is only what sits in front of it. Prints `{"url": ...}` when listening.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

const PREDICTION = JSON.stringify({ label: "positive", score: 0.9709 });

const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(PREDICTION),
    });
    res.end(PREDICTION);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(
    `${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`,
  );
});
process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
