import { createServer as createHttpServer, type RequestListener, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { ListenAddress } from "../config/types.js";
import { errorBody } from "./json-error.js";

/** TLS material for an https address. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

/** Protection against slow and too many clients. Times in milliseconds. */
export interface ConnectionLimits {
  /** Time a client has to send its request headers (slowloris); default 10 s. */
  headersTimeoutMs: number;
  /** Time a client has to send its whole request, body included; default 60 s. */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open; default 5 s. */
  keepAliveTimeoutMs: number;
  /** Connections open at once; more are refused until some close. Default 1024. */
  maxConnections: number;
}

/** The limits every listener gets unless told otherwise. */
export const DEFAULT_LIMITS: ConnectionLimits = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 1024,
});

/** A server that is listening, with the address it actually got. */
export interface ListeningServer {
  server: Server;
  /** `http://127.0.0.1:8082`; the real port when 0 was asked for. */
  url: string;
  port: number;
  /**
   * Stops accepting connections and closes idle ones; requests in flight may finish for `graceMs`
   * (default 10 s), after which their connections are cut.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * Creates and starts an HTTP or HTTPS server on `address`. Rejects on listen errors
 * (EADDRINUSE, EACCES) with the address in the message. Keep-alive sockets are closed on close().
 */
export async function listen(
  address: ListenAddress,
  handler: RequestListener,
  tls: TlsFiles | undefined,
  limits: ConnectionLimits = DEFAULT_LIMITS,
): Promise<ListeningServer> {
  // Node enforces the header and request timeouts only at this interval (30 s by default).
  const checking = { connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs) };
  const server: Server =
    address.protocol === "https"
      ? createHttpsServer({ ...checking, cert: tls?.cert, key: tls?.key }, handler)
      : createHttpServer(checking, handler);
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxConnections = limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(
        new Error(
          `cannot listen on ${address.protocol}://${hostPort(address.host, address.port)}: ${err.message}`,
        ),
      );
    };
    server.once("error", onError);
    server.listen(address.port, address.host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const bound = server.address();
  const port = typeof bound === "object" && bound !== null ? bound.port : address.port;
  return {
    server,
    port,
    url: `${address.protocol}://${hostPort(address.host, port)}`,
    close: (graceMs = 10_000) =>
      new Promise<void>((resolve) => {
        const cut = setTimeout(() => server.closeAllConnections(), graceMs);
        cut.unref();
        server.close(() => {
          clearTimeout(cut);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * Answers requests Node cannot take (unparsable 400, headers too large 431, too slow 408) with a
 * JSON error and reports them, since they are responses too. The connection is then closed for
 * good: a client that stalled mid-headers would otherwise hold its half-closed socket, and its
 * place under the connection cap, for as long as it likes.
 */
export function answerClientErrors(server: Server, onResponse: (status: number) => void): void {
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    // A client that went away mid-request (reset, or its side closed before the request was
    // whole) is answered nothing, so nothing is counted.
    if (!socket.writable || err.code === "HPE_INVALID_EOF_STATE" || err.code === "ECONNRESET") {
      socket.destroy();
      return;
    }
    const [status, reason, message] =
      err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "Request Timeout", "The request was not received in time."]
        : err.code === "HPE_HEADER_OVERFLOW"
          ? [431, "Request Header Fields Too Large", "The request headers are too large."]
          : [400, "Bad Request", `The request is not valid HTTP (${err.code ?? err.message}).`];
    onResponse(status);
    const body = JSON.stringify(errorBody(status, message));
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    // Once the answer is out, the socket is closed whether or not the client closes its side.
    socket.once("finish", () => socket.destroy());
  });
}
