import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import { byteLength } from "../exposition/text-chunks.js";

/**
 * Writes a response made of chunks, never joined, with a Content-Length summed from them; HEAD
 * (`headOnly`) gets the headers only. Waits whenever the client is slower than the chunks come,
 * and stops, leaving no listener behind, when the connection closes before the end. Resolves true
 * once the whole body was handed to the socket, false when the connection closed first.
 */
export async function writeChunks(
  res: ServerResponse,
  status: number,
  headers: OutgoingHttpHeaders,
  chunks: readonly Uint8Array[],
  headOnly = false,
): Promise<boolean> {
  res.writeHead(status, { ...headers, "Content-Length": String(byteLength(chunks)) });
  if (headOnly) {
    res.end();
    return true;
  }
  for (const chunk of chunks) {
    if (isClosed(res)) return false;
    if (!res.write(chunk) && !(await drained(res))) return false;
  }
  if (isClosed(res)) return false;
  res.end();
  return true;
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
