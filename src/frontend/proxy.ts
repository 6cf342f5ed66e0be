import { request as httpRequest, type Agent, type IncomingMessage, type ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import { performance } from "node:perf_hooks";
import { jsonError, writeReply } from "../server/json-error.js";

/** How one forwarded request ended. */
export interface ForwardResult {
  /** The status the client got (the worker's, or 502 when the worker failed). */
  status: number;
  /** Milliseconds from dispatch until the worker's response ended (or failed). */
  backendMs: number;
}

// Hop-by-hop headers belong to one connection and are not forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

function endToEnd(headers: IncomingMessage["headers"]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

interface Target {
  protocol: string;
  hostname: string;
  port: string;
  host: string;
  /** The base URL's path without its trailing slash, put before each request's path. */
  prefix: string;
}

/** Bodies (either way) of at most this many bytes, with a Content-Length, are read whole and sent at once. */
const WHOLE_BODY_BYTES = 64 * 1024;

/** Worker base URLs parsed once: a handful per model, parsed on every request otherwise. */
const targets = new Map<string, Target>();

function parsedTarget(baseUrl: string): Target {
  let target = targets.get(baseUrl);
  if (target === undefined) {
    const url = new URL(baseUrl);
    target = {
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port,
      host: url.host,
      prefix: url.pathname.replace(/\/$/, ""),
    };
    // Restarted workers come back on new ports; a bound keeps that from growing without end.
    if (targets.size >= 1024) targets.clear();
    targets.set(baseUrl, target);
  }
  return target;
}

/**
 * Forwards `req` unchanged (method, path, query, headers, body) to the worker at `baseUrl` and its
 * response back. Bodies of known size up to 64 KiB are read whole and sent in one write (most
 * inference requests and answers: a pipe costs more than the copy); others stream. Never rejects:
 * a worker that cannot be reached, or dies before a whole small answer, gets the client a 502 JSON
 * error; one that dies mid-stream cuts the client's connection (counted as 502).
 */
export function forward(
  req: IncomingMessage,
  res: ServerResponse,
  baseUrl: string,
  agent: Agent | undefined,
): Promise<ForwardResult> {
  const target = parsedTarget(baseUrl);
  const started = performance.now();
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    let settled = false;
    const settle = (status: number): void => {
      if (settled) return;
      settled = true;
      resolve({ status, backendMs: performance.now() - started });
    };
    const upstream = send({
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method: req.method,
      path: `${target.prefix}${req.url ?? "/"}`,
      headers: { ...endToEnd(req.headers), host: target.host },
      agent,
    });
    upstream.on("response", (answer) => {
      const status = answer.statusCode ?? 502;
      const length = Number(answer.headers["content-length"]);
      if (Number.isInteger(length) && length <= WHOLE_BODY_BYTES) {
        // A small answer of known size goes out in one write, headers included, without a pipe.
        const chunks: Buffer[] = [];
        answer.on("data", (chunk: Buffer) => chunks.push(chunk));
        answer.on("end", () => {
          res.writeHead(status, endToEnd(answer.headers));
          res.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
          settle(status);
        });
        answer.on("error", (err) => {
          // Nothing was sent yet, so the client gets a proper error rather than a cut connection.
          if (!res.headersSent)
            writeReply(req, res, jsonError(502, `worker ${target.host} failed: ${err.message}`));
          else res.destroy();
          settle(502);
        });
        return;
      }
      res.writeHead(status, endToEnd(answer.headers));
      answer.pipe(res);
      answer.on("end", () => settle(answer.statusCode ?? 502));
      answer.on("error", () => {
        // The worker died mid-body: the client cannot get a status any more, only a cut connection.
        res.destroy();
        settle(502);
      });
    });
    upstream.on("error", (err) => {
      if (!res.headersSent) {
        writeReply(req, res, jsonError(502, `worker ${target.host} failed: ${err.message}`));
      } else {
        res.destroy();
      }
      settle(502);
    });
    // A client that goes away stops the worker's work on its behalf too.
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    const length = Number(req.headers["content-length"]);
    if (Number.isInteger(length) && length <= WHOLE_BODY_BYTES) {
      // A small body of known size goes to the worker in one write with the headers, without a pipe.
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => upstream.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    } else {
      req.pipe(upstream);
    }
  });
}
