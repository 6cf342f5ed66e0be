import { parseInferencePath, requestTarget } from "../frontend/inference-path.js";

/** The model version an inference request addressed. */
export interface AccessModel {
  model: string;
  /** The version the URI names; `default` when it names none, as the frontend records it. */
  version: string;
}

/**
 * The model and version an inference request's URI addresses, by the frontend's path rules
 * (`/predictions/{model}[/{version}]`, `/explanations/...`, KServe v1 and v2); undefined for
 * anything else: management (`/models...`), `/ping`, `/metrics`, `/api-description`, a gRPC method.
 */
export function modelOfUri(uri: string): AccessModel | undefined {
  const target = requestTarget(uri);
  if (target === undefined) return undefined;
  // The path rules only; the method is the caller's to judge (TorchServe runs a model for any
  // method on these paths but OPTIONS, which describes its API).
  const path = parseInferencePath("POST", target.pathname);
  return path === undefined ? undefined : { model: path.model, version: path.version ?? "default" };
}

/**
 * The model version a logged request ran, or undefined when it ran none: a gRPC call (its model is
 * in the body, not in the log), an OPTIONS request (TorchServe answers it with the API description)
 * or a URI that is no inference path.
 */
export function modelOfAccess(access: { method: string; uri: string }): AccessModel | undefined {
  if (access.method === "gRPC" || access.method === "OPTIONS") return undefined;
  return modelOfUri(access.uri);
}
