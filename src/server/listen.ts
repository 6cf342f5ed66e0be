import {
  createServer as createHttpServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { ListenAddress } from "../config/types.js";
import { errorBody } from "./json-error.js";
import { tlsContextOptions, type TlsFiles } from "./tls-policy.js";

export type { TlsFiles } from "./tls-policy.js";

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
  /**
   * https only: time from the TCP connection to the end of the TLS handshake, however the client
   * drips its bytes; then the connection is destroyed, unanswered and uncounted. Default 10 s.
   */
  tlsHandshakeTimeoutMs: number;
}

/** The limits every listener gets unless told otherwise. */
export const DEFAULT_LIMITS: ConnectionLimits = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 1024,
  tlsHandshakeTimeoutMs: 10_000,
});

/** A server that is listening, with the address it actually got. */
export interface ListeningServer {
  server: Server;
  /** `http://127.0.0.1:8082`; the real port when 0 was asked for. */
  url: string;
  port: number;
  /**
   * Stops accepting connections, closes idle ones and those still in their TLS handshake at once;
   * requests in flight may finish for `graceMs` (default 10 s), after which every socket still
   * open is destroyed. Resolves once the last one is gone.
   */
  close(graceMs?: number): Promise<void>;
  /**
   * https: serves `files` to connections that start after the call (those open keep theirs).
   * Throws when OpenSSL cannot use them, leaving the current pair in place. Plain http: no-op.
   */
  replaceTls(files: TlsFiles): void;
  /** Sockets open now, handshaking, idle and busy alike (what the connection cap counts). */
  openSockets(): number;
}

/**
 * Creates and starts an HTTP or HTTPS server on `address`. Rejects on listen errors
 * (EADDRINUSE, EACCES) with the address in the message. Every socket is tracked from its TCP
 * accept, so that close() ends all of them, and on https a connection that has not finished its
 * handshake within `limits.tlsHandshakeTimeoutMs` is destroyed.
 */
export async function listen(
  address: ListenAddress,
  handler: RequestListener,
  tls: TlsFiles | undefined,
  limits: ConnectionLimits = DEFAULT_LIMITS,
): Promise<ListeningServer> {
  // Node enforces the header and request timeouts only at this interval (30 s by default).
  const checking = { connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs) };
  const https: HttpsServer | undefined =
    address.protocol === "https"
      ? createHttpsServer(
          {
            ...checking,
            ...tlsContextOptions(tls),
            // Node's own timer restarts with every byte; the deadline below does not.
            handshakeTimeout: limits.tlsHandshakeTimeoutMs,
          },
          handler,
        )
      : undefined;
  const server: Server = https ?? createHttpServer(checking, handler);
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxConnections = limits.maxConnections;
  const sockets = trackSockets(server);
  const handshakes = https === undefined ? undefined : bindHandshakes(https, limits.tlsHandshakeTimeoutMs);
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
        const cut = setTimeout(() => {
          server.closeAllConnections();
          // The HTTP layer knows only connections past their handshake and first bytes.
          for (const socket of sockets) socket.destroy();
        }, graceMs);
        cut.unref();
        server.close(() => {
          clearTimeout(cut);
          resolve();
        });
        server.closeIdleConnections();
        // A connection still in its handshake has no request to finish.
        handshakes?.destroyAll();
      }),
    replaceTls: (files) => https?.setSecureContext(tlsContextOptions(files)),
    openSockets: () => sockets.size,
  };
}

/** Every TCP socket the server accepted and that is not closed yet. */
function trackSockets(server: Server): ReadonlySet<Socket> {
  const sockets = new Set<Socket>();
  // On https this is the raw TCP socket, before any TLS: destroying it ends the TLS socket too.
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  return sockets;
}

/** The connections of an https server that have not finished their TLS handshake. */
interface Handshakes {
  destroyAll(): void;
}

/**
 * Owns every https connection until its handshake ends: destroyed at the deadline, or at once on a
 * TLS error (garbage, plain HTTP, a handshake timeout, a client gone). Nothing is written to such
 * a socket (it has no TLS session to write with) and nothing is counted: no request was made.
 */
function bindHandshakes(server: HttpsServer, deadlineMs: number): Handshakes {
  // https.Server turns every TLS error into an HTTP 'clientError'; one listening there would write
  // an HTTP answer onto a socket with no session, then wait for a 'finish' that never comes.
  server.removeAllListeners("tlsClientError");
  server.on("tlsClientError", (_err: Error, socket: TLSSocket) => socket.destroy());
  // Node hands the raw TCP socket to 'connection' and the TLS socket built on it to
  // 'secureConnection'; both report the same addresses, which are unique among open connections.
  const pending = new Map<string, { socket: Socket; deadline: NodeJS.Timeout }>();
  server.on("connection", (socket: Socket) => {
    const key = connectionKey(socket);
    const deadline = setTimeout(() => socket.destroy(), deadlineMs);
    deadline.unref();
    const entry = { socket, deadline };
    pending.set(key, entry);
    socket.once("close", () => {
      clearTimeout(deadline);
      if (pending.get(key) === entry) pending.delete(key);
    });
  });
  server.on("secureConnection", (socket: TLSSocket) => {
    const key = connectionKey(socket);
    const entry = pending.get(key);
    if (entry === undefined) return;
    clearTimeout(entry.deadline);
    pending.delete(key);
  });
  return {
    destroyAll: () => {
      for (const { socket } of [...pending.values()]) socket.destroy();
    },
  };
}

function connectionKey(socket: Socket): string {
  return `${socket.localAddress ?? ""}|${socket.localPort ?? ""}|${socket.remoteAddress ?? ""}|${socket.remotePort ?? ""}`;
}

function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * How long a client error's answer may take to leave before its socket is destroyed anyway: the
 * answer is a few hundred bytes, so only a client that stopped reading makes it wait.
 */
const ANSWER_LINGER_MS = 2000;

/**
 * Answers requests Node cannot take (unparsable 400, headers too large 431, too slow 408) with a
 * JSON error and reports them, since they are responses too, unless a response to that request
 * has begun: then the connection is only destroyed, since an answer would land inside the body
 * already on its way, and the request has its count. Either way the connection is then closed
 * for good: a client that stalled mid-headers would otherwise hold its half-closed socket, and
 * its place under the connection cap, for as long as it likes. TLS errors never come here
 * ({@link listen} destroys those sockets itself).
 */
export function answerClientErrors(server: Server, onResponse: (status: number) => void): void {
  // Each socket's responses not yet finished (pipelined requests queue theirs behind the first),
  // and its latest one, whose request may still be arriving after it finished.
  const responses = new WeakMap<Socket, { unfinished: Set<ServerResponse>; latest: ServerResponse }>();
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const known = responses.get(req.socket);
    const unfinished = known?.unfinished ?? new Set<ServerResponse>();
    unfinished.add(res);
    res.once("finish", () => unfinished.delete(res));
    res.once("close", () => unfinished.delete(res));
    responses.set(req.socket, { unfinished, latest: res });
  });
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    // A client that went away mid-request (reset, or its side closed before the request was
    // whole) is answered nothing, so nothing is counted.
    if (
      !socket.writable ||
      err.code === "HPE_INVALID_EOF_STATE" ||
      err.code === "ECONNRESET" ||
      responseBegun(responses.get(socket))
    ) {
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
    // Once the answer is out, or a client that does not read had its chance, the socket is
    // closed whether or not the client closes its side.
    const linger = setTimeout(() => socket.destroy(), ANSWER_LINGER_MS);
    linger.unref();
    socket.once("finish", () => socket.destroy());
    socket.once("close", () => clearTimeout(linger));
  });
}

/**
 * True when an answer would land inside a response: one is being written on the socket, or the
 * request still arriving (the one the error is about) was answered already.
 */
function responseBegun(
  known: { unfinished: ReadonlySet<ServerResponse>; latest: ServerResponse } | undefined,
): boolean {
  if (known === undefined) return false;
  for (const res of known.unfinished) if (res.headersSent) return true;
  return known.latest.headersSent && !known.latest.req.complete;
}
