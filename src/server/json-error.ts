import type { IncomingMessage, ServerResponse } from "node:http";

/** TorchServe's error types by status, for the JSON `type` field. */
const ERROR_TYPES: Readonly<Record<number, string>> = {
  400: "BadRequestException",
  404: "ResourceNotFoundException",
  405: "MethodNotAllowedException",
  408: "RequestTimeoutException",
  413: "RequestEntityTooLargeException",
  500: "InternalServerException",
  501: "NotImplementedException",
  502: "BadGatewayException",
  503: "ServiceUnavailableException",
};

/** The JSON body of every error: `{code, type, message}`, as TorchServe answers. */
export interface ErrorBody {
  code: number;
  type: string;
  message: string;
}

/** Builds the error body for a status; `type` overrides the status's default exception name. */
export function errorBody(code: number, message: string, type?: string): ErrorBody {
  return { code, type: type ?? ERROR_TYPES[code] ?? "ServiceException", message };
}

/** A whole response, built before anything is written. */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A JSON error reply. */
export function jsonError(
  code: number,
  message: string,
  headers: Record<string, string> = {},
  type?: string,
): Reply {
  return {
    status: code,
    headers: { ...headers, "Content-Type": "application/json" },
    body: `${JSON.stringify(errorBody(code, message, type), null, 2)}\n`,
  };
}

/** A JSON reply with a 2xx status. */
export function jsonReply(status: number, value: unknown): Reply {
  return {
    status,
    headers: { "Content-Type": "application/json" },
    body: `${JSON.stringify(value, null, 2)}\n`,
  };
}

/** Writes a whole reply, encoded once, with its length; HEAD gets the headers only. */
export function writeReply(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
  const body = Buffer.from(reply.body);
  res.writeHead(reply.status, { ...reply.headers, "Content-Length": String(body.length) });
  res.end(req.method === "HEAD" ? undefined : body);
}
