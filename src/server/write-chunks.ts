import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import { byteLength } from "../exposition/text-chunks.js";

/** Options of {@link writeChunks}. */
export interface WriteChunksOptions {
  /** Headers only (HEAD), with the Content-Length the body would have. */
  headOnly?: boolean;
  /**
   * Milliseconds the whole answer may take, from its headers to its last byte handed to the
   * socket; past it the connection is closed. Undefined: no limit.
   */
  timeoutMs?: number | undefined;
}

/**
 * Writes a response made of chunks, never joined, with a Content-Length summed from them. Waits
 * whenever the client is slower than the chunks come, and stops, leaving no listener or timer
 * behind, when the connection closes before the end, or is closed because the answer took longer
 * than `timeoutMs` (a client that stops reading would otherwise hold the chunks for as long as
 * its connection lives). Resolves true once the whole body was handed to the socket, false when
 * the connection closed first.
 */
export async function writeChunks(
  res: ServerResponse,
  status: number,
  headers: OutgoingHttpHeaders,
  chunks: readonly Uint8Array[],
  options: WriteChunksOptions = {},
): Promise<boolean> {
  res.writeHead(status, { ...headers, "Content-Length": String(byteLength(chunks)) });
  if (options.headOnly === true) {
    res.end();
    return true;
  }
  const { timeoutMs } = options;
  const deadline = timeoutMs === undefined ? undefined : setTimeout(() => res.destroy(), timeoutMs);
  try {
    for (const chunk of chunks) {
      if (isClosed(res)) return false;
      if (!res.write(chunk) && !(await drained(res))) return false;
    }
    if (isClosed(res)) return false;
    res.end();
    return true;
  } finally {
    clearTimeout(deadline);
  }
}

/** Whether nothing more can be written: the client went away, or someone destroyed the response. */
function isClosed(res: ServerResponse): boolean {
  return res.destroyed || res.socket === null || res.socket.destroyed;
}

/** True once the response drains, false if it closes first. */
function drained(res: ServerResponse): Promise<boolean> {
  if (isClosed(res)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const settle = (ok: boolean): void => {
      res.off("drain", onDrain);
      res.off("close", onClose);
      resolve(ok);
    };
    const onDrain = (): void => settle(true);
    const onClose = (): void => settle(false);
    res.on("drain", onDrain);
    res.on("close", onClose);
  });
}
