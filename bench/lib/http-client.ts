import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";

/** One timed request. */
export interface Timed {
  status: number;
  /** Request start to the last body byte, in milliseconds. */
  ms: number;
  /** Body bytes as sent (compressed, if the answer was). */
  bytes: number;
  /** The answer's Content-Encoding, if any. */
  encoding: string | undefined;
  /** The answer's Content-Type, if any. */
  contentType: string | undefined;
  /** The body, only when asked for (keeping it would cost the client time and memory otherwise). */
  body: string | undefined;
}

/** A client with one keep-alive connection per target, as Prometheus scrapes: one request at a time. */
export class KeepAliveClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });

  /**
   * GETs `url` and times it end to end, body drained. A kept connection the server closed while
   * idle (its keep-alive timeout, 5 s for serve-metrics, passes between 100k-series scrapes) is
   * retried once on a new one, and only that attempt is timed. `headers` go with the request
   * (`Accept-Encoding: gzip`, say); a compressed body is counted and kept as it came.
   */
  async get(url: string, keepBody = false, headers: Record<string, string> = {}): Promise<Timed> {
    try {
      return await this.attempt(url, keepBody, headers);
    } catch (err) {
      if (!(err instanceof StaleConnectionError)) throw err;
      return this.attempt(url, keepBody, headers);
    }
  }

  private attempt(url: string, keepBody: boolean, headers: Record<string, string>): Promise<Timed> {
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const req = request(url, { agent: this.agent, headers }, (res) => {
        let bytes = 0;
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => {
          bytes += chunk.length;
          if (keepBody) chunks.push(chunk);
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            ms: performance.now() - started,
            bytes,
            encoding: res.headers["content-encoding"],
            contentType: res.headers["content-type"],
            body: keepBody ? Buffer.concat(chunks).toString("utf8") : undefined,
          }),
        );
        res.on("error", reject);
      });
      req.on("error", (err: NodeJS.ErrnoException) => {
        reject(req.reusedSocket && err.code === "ECONNRESET" ? new StaleConnectionError(err) : err);
      });
      req.end();
    });
  }

  /** Closes the kept connections. */
  close(): void {
    this.agent.destroy();
  }
}

/** The server had closed the kept-alive connection this request was sent on. */
class StaleConnectionError extends Error {
  constructor(cause: Error) {
    super(`kept-alive connection closed by the server: ${cause.message}`, { cause });
  }
}
