import { createServer as createHttpServer, type RequestListener, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { ListenAddress } from "../config/types.js";

/** TLS material for an https address. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

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
): Promise<ListeningServer> {
  const server: Server =
    address.protocol === "https"
      ? createHttpsServer({ cert: tls?.cert, key: tls?.key }, handler)
      : createHttpServer(handler);
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

/** Answers requests Node cannot parse with 400 and reports them, since they are responses too. */
export function answerClientErrors(server: Server, onResponse: (status: number) => void): void {
  server.on("clientError", (_err, socket) => {
    if (socket.writable) {
      onResponse(400);
      socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    } else {
      socket.destroy();
    }
  });
}
