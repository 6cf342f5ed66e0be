import type { Server } from "node:http";
import { errorBody } from "./json-error.js";

/**
 * Answers `CONNECT` (which Node hands to a `connect` listener, and without one drops with no
 * answer) with a counted 405 JSON error: this service is no proxy. The connection is then closed.
 */
export function answerConnectRequests(server: Server, onResponse: (status: number) => void): void {
  server.on("connect", (_req, socket) => {
    onResponse(405);
    const body = JSON.stringify(errorBody(405, "CONNECT is not supported here: this service is no proxy."));
    socket.on("error", () => undefined);
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, POST\r\nConnection: close\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    // Once the answer is out, the socket is closed whether or not the client closes its side.
    socket.once("finish", () => socket.destroy());
  });
}
