#!/usr/bin/env node
// A demo model server that serve-metrics can stand in front of: a sentiment classifier (naive
// Bayes, trained at start from sentences.json beside this file) behind TorchServe's and KServe's
// inference paths. Like a TorchServe Python backend it prints two `[METRICS]` lines per inference
// (HandlerTime, PredictionTime) on stdout. Plain JavaScript with no dependencies, so `node` runs it
// as it is:
//
//   node examples/demo-worker/worker.js --port 9000 [--host 127.0.0.1] [--models sentiment,other]
//
// --port 0 picks a free port; the "listening on" line says which. Without --models every model
// name is served by the same classifier; with it, other names get 404 as in TorchServe.
import { Buffer } from "node:buffer";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { hostname } from "node:os";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { setTimeout } from "node:timers";
import { URL } from "node:url";
import { parseArgs } from "node:util";

const USAGE =
  "usage: node examples/demo-worker/worker.js [--port 9000] [--host 127.0.0.1] [--models name,...]\n";
/** Larger bodies get 413: the demo classifies sentences, not documents. */
const MAX_BODY_BYTES = 1024 * 1024;
/** Model and version names end up in `[METRICS]` lines, so they must not contain `|`, `,` or `:`. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** A request id from a client is printed only if it cannot break the line protocol. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9_.-]{1,128}$/;

// ---------------------------------------------------------------------------------------------
// The model: multinomial naive Bayes over word features, with the usual negation trick (words
// after "not", "never", "n't", ... up to the next punctuation become `not_<word>`) so that
// "not good" and "good" are different features.

const STOPWORDS = new Set(
  "a an the and or of to in on at for with from by as is are was were be been am it its this that these those i me my we our you your he she they them their there here so than then too".split(
    " ",
  ),
);
const NEGATORS = new Set(["not", "no", "never", "nothing", "none", "nobody", "cannot", "without", "hardly"]);
const SCOPE_ENDS = new Set([".", ",", "!", "?", ";", ":", "but", "however"]);

/** Lowercase word features of a text, negation-marked, stopwords dropped. */
function tokenize(text) {
  const tokens = text
    .toLowerCase()
    .replace(/[\u2018\u2019]/g, "'")
    .match(/[a-z0-9]+(?:'[a-z]+)*|[.,!?;:]/g);
  const features = [];
  let negated = false;
  for (const token of tokens ?? []) {
    if (SCOPE_ENDS.has(token)) {
      negated = false;
    } else if (NEGATORS.has(token) || token.endsWith("n't")) {
      features.push("not");
      negated = true;
    } else if (!STOPWORDS.has(token)) {
      const word = token.replace(/'s$/, "");
      features.push(negated ? `not_${word}` : word);
    }
  }
  return features;
}

/**
 * Trains on `{label: [sentence, ...]}`. Each feature counts once per sentence (binarized naive
 * Bayes, which suits short texts better than raw counts) with add-one smoothing.
 */
function train(sentencesByLabel) {
  const labels = Object.keys(sentencesByLabel);
  if (labels.length < 2) throw new Error("sentences.json needs at least two labels");
  const vocabulary = new Set();
  const counts = new Map();
  const totals = new Map();
  let documents = 0;
  for (const label of labels) {
    const perFeature = new Map();
    let total = 0;
    for (const sentence of sentencesByLabel[label]) {
      for (const feature of new Set(tokenize(sentence))) {
        perFeature.set(feature, (perFeature.get(feature) ?? 0) + 1);
        vocabulary.add(feature);
        total += 1;
      }
    }
    counts.set(label, perFeature);
    totals.set(label, total);
    documents += sentencesByLabel[label].length;
  }
  const logPrior = new Map(labels.map((l) => [l, Math.log(sentencesByLabel[l].length / documents)]));
  const logLikelihood = (label, feature) =>
    Math.log(((counts.get(label).get(feature) ?? 0) + 1) / (totals.get(label) + vocabulary.size));
  return { labels, vocabulary, logPrior, logLikelihood, documents };
}

/**
 * Classifies a text. `contributions` (when asked) gives, per feature, how much it moved the
 * log-odds of the predicted label against the runner-up; unknown words contribute 0.
 */
function classify(model, text, withContributions) {
  const features = tokenize(text);
  const known = [...new Set(features)].filter((f) => model.vocabulary.has(f));
  const logScores = model.labels.map(
    (label) => model.logPrior.get(label) + known.reduce((sum, f) => sum + model.logLikelihood(label, f), 0),
  );
  // Softmax in log space: subtracting the maximum keeps exp() from underflowing to 0/0.
  const max = Math.max(...logScores);
  const weights = logScores.map((s) => Math.exp(s - max));
  const sum = weights.reduce((a, b) => a + b, 0);
  const order = logScores.map((_, i) => i).sort((a, b) => logScores[b] - logScores[a]);
  const label = model.labels[order[0]];
  const result = { label, score: round(weights[order[0]] / sum, 4) };
  if (!withContributions) return result;
  const runnerUp = model.labels[order[1]];
  const tokens = features.map((token) => ({
    token,
    contribution: model.vocabulary.has(token)
      ? round(model.logLikelihood(label, token) - model.logLikelihood(runnerUp, token), 4)
      : 0,
  }));
  return { ...result, tokens };
}

function round(value, digits) {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

// ---------------------------------------------------------------------------------------------
// HTTP

/** An error answered as TorchServe's JSON `{code, type, message}`. */
class HttpError extends Error {
  constructor(code, type, message) {
    super(message);
    this.code = code;
    this.type = type;
  }
}

const badRequest = (message) => new HttpError(400, "BadRequestException", message);

/**
 * Which inference API a path uses: `{kind, model, version}`, or undefined for other paths.
 * Segments are split before decoding, so an encoded `/` stays part of a name.
 */
function matchInferencePath(pathname) {
  const segments = pathname
    .replace(/(.)\/$/, "$1")
    .split("/")
    .slice(1);
  let raw;
  if ((segments[0] === "predictions" || segments[0] === "explanations") && [2, 3].includes(segments.length)) {
    raw = { kind: segments[0], model: segments[1], version: segments[2] };
  } else if (segments[0] === "v1" && segments[1] === "models" && segments.length === 3) {
    const verb = /:(predict|explain)$/.exec(segments[2]);
    if (verb === null) return undefined;
    raw = { kind: `v1-${verb[1]}`, model: segments[2].slice(0, verb.index), version: undefined };
  } else if (segments[0] === "v2" && segments[1] === "models" && segments.at(-1) === "infer") {
    if (segments.length === 4) raw = { kind: "v2-infer", model: segments[2], version: undefined };
    else if (segments.length === 6 && segments[3] === "versions")
      raw = { kind: "v2-infer", model: segments[2], version: segments[4] };
    else return undefined;
  } else {
    return undefined;
  }
  const decode = (what, value) => {
    if (value === undefined) return undefined;
    let decoded;
    try {
      decoded = decodeURIComponent(value);
    } catch {
      throw badRequest(`${what} ${JSON.stringify(value)} is not valid percent-encoding`);
    }
    if (!NAME.test(decoded)) {
      throw badRequest(`${what} ${JSON.stringify(decoded)} must match ${String(NAME)}`);
    }
    return decoded;
  };
  return { kind: raw.kind, model: decode("model name", raw.model), version: decode("version", raw.version) };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        // Stop buffering but keep reading, so the client still gets our 413 rather than a reset.
        req.removeAllListeners("data");
        req.resume();
        reject(new HttpError(413, "RequestEntityTooLargeException", `body exceeds ${MAX_BODY_BYTES} bytes`));
      } else {
        chunks.push(chunk);
      }
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function parseJson(body) {
  if (body.trim() === "") throw badRequest("request body is empty");
  try {
    return JSON.parse(body);
  } catch (err) {
    throw badRequest(`request body is not valid JSON: ${err.message}`);
  }
}

/** A text to classify: a string, or `{text}` / `{data}` holding one, as TorchServe's text handlers take. */
function textOf(value, where) {
  const text =
    typeof value === "string"
      ? value
      : typeof value === "object" && value !== null && !Array.isArray(value)
        ? (value.text ?? value.data)
        : undefined;
  if (typeof text !== "string") throw badRequest(`${where} must be a string or {"text": "..."}`);
  if (text.trim() === "") throw badRequest(`${where} is empty`);
  return text;
}

/**
 * The texts of a request and how to shape the answer. TorchServe's paths take the body as text,
 * or as JSON (a string, `{"text": ...}` or an array of those) when the content type says JSON.
 */
function readInputs(kind, body, contentType) {
  if (kind === "predictions" || kind === "explanations") {
    if (!/^application\/json\b/i.test(contentType ?? "")) {
      if (body.trim() === "") throw badRequest("request body is empty");
      return { texts: [body], batch: false };
    }
    const json = parseJson(body);
    if (!Array.isArray(json)) return { texts: [textOf(json, "request body")], batch: false };
    if (json.length === 0) throw badRequest("request body is an empty array");
    return { texts: json.map((v, i) => textOf(v, `element ${i}`)), batch: true };
  }
  const json = parseJson(body);
  if (kind === "v1-predict" || kind === "v1-explain") {
    const instances = json?.instances;
    if (!Array.isArray(instances) || instances.length === 0) {
      throw badRequest('expected {"instances": ["text", ...]} with at least one instance');
    }
    return { texts: instances.map((v, i) => textOf(v, `instances[${i}]`)), batch: true };
  }
  const input = Array.isArray(json?.inputs) ? json.inputs[0] : undefined;
  // v2 JSON may nest data row-major by shape ([[...], [...]]); the texts are the leaves.
  const data = typeof input?.data === "string" ? [input.data] : input?.data?.flat?.(Infinity);
  if (!Array.isArray(data) || data.length === 0) {
    throw badRequest('expected {"inputs": [{"name": ..., "datatype": "BYTES", "data": ["text", ...]}]}');
  }
  if (input.datatype !== undefined && input.datatype !== "BYTES") {
    throw badRequest(`inputs[0].datatype must be BYTES, not ${JSON.stringify(input.datatype)}`);
  }
  return { texts: data.map((v, i) => textOf(v, `inputs[0].data[${i}]`)), batch: true, v2Id: json.id };
}

/** The response body for each API, from the per-text results. */
function shapeOutput(kind, route, inputs, results, requestId) {
  switch (kind) {
    case "predictions":
    case "explanations":
      return inputs.batch ? results : results[0];
    case "v1-predict":
      return { predictions: results };
    case "v1-explain":
      return { explanations: results };
    default:
      return {
        model_name: route.model,
        ...(route.version === undefined ? {} : { model_version: route.version }),
        id: typeof inputs.v2Id === "string" ? inputs.v2Id : requestId,
        outputs: [
          { name: "label", shape: [results.length], datatype: "BYTES", data: results.map((r) => r.label) },
          { name: "score", shape: [results.length], datatype: "FP32", data: results.map((r) => r.score) },
        ],
      };
  }
}

/** The two lines a TorchServe Python backend prints per request; the frontend parses them. */
function metricLines(model, requestId, handlerMs, predictionMs) {
  const tail = `|#ModelName:${model},Level:Model|#type:GAUGE|#hostname:${HOST},${Math.floor(Date.now() / 1000)},${requestId}`;
  return (
    `[METRICS]HandlerTime.Milliseconds:${handlerMs.toFixed(2)}${tail}\n` +
    `[METRICS]PredictionTime.Milliseconds:${predictionMs.toFixed(2)}${tail}\n`
  );
}

function send(res, status, body, headers = {}) {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    ...headers,
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
  });
  res.end(text);
}

async function handle(req, res, requestId) {
  const { pathname } = new URL(req.url ?? "/", "http://worker");
  if (pathname === "/ping") {
    if (req.method !== "GET" && req.method !== "HEAD") {
      throw new HttpError(405, "MethodNotAllowedException", `${req.method} is not allowed on /ping`);
    }
    return send(res, 200, { status: "Healthy" });
  }
  const route = matchInferencePath(pathname);
  if (route === undefined) throw new HttpError(404, "ResourceNotFoundException", `no such path: ${pathname}`);
  if (req.method !== "POST") {
    throw new HttpError(
      405,
      "MethodNotAllowedException",
      `${req.method} is not allowed on ${pathname}; use POST`,
    );
  }
  if (MODELS !== undefined && !MODELS.has(route.model)) {
    throw new HttpError(404, "ModelNotFoundException", `Model not found: ${route.model}`);
  }
  const body = await readBody(req);

  // PredictionTime spans the whole request once the body is in (as TorchServe's service wrapper
  // times the handler call); HandlerTime only the model's own work.
  const predictionStart = performance.now();
  const inputs = readInputs(route.kind, body, req.headers["content-type"]);
  const explain = route.kind === "explanations" || route.kind === "v1-explain";
  const handlerStart = performance.now();
  const results = inputs.texts.map((text) => classify(MODEL, text, explain));
  const handlerMs = performance.now() - handlerStart;
  const output = shapeOutput(route.kind, route, inputs, results, requestId);
  const predictionMs = performance.now() - predictionStart;
  process.stdout.write(metricLines(route.model, requestId, handlerMs, predictionMs));
  send(res, 200, output, { "x-request-id": requestId });
}

// ---------------------------------------------------------------------------------------------
// Start

let options;
try {
  ({ values: options } = parseArgs({
    options: {
      port: { type: "string", default: "9000" },
      host: { type: "string", default: "127.0.0.1" },
      models: { type: "string" },
      help: { type: "boolean", default: false },
    },
  }));
} catch (err) {
  process.stderr.write(`demo worker: ${err.message}\n${USAGE}`);
  process.exit(2);
}
if (options.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const PORT = Number(options.port);
if (!/^\d+$/.test(options.port) || PORT > 65535) {
  process.stderr.write(
    `demo worker: --port ${JSON.stringify(options.port)} is not a port number (0-65535)\n`,
  );
  process.exit(2);
}
const MODELS = options.models === undefined ? undefined : new Set(options.models.split(",").filter(Boolean));
const HOST = hostname();

const data = JSON.parse(readFileSync(new URL("sentences.json", import.meta.url), "utf8"));
const MODEL = train(data.sentences);
process.stdout.write(
  `demo worker: trained a ${MODEL.labels.join("/")} classifier on ${MODEL.documents} sentences ` +
    `(${MODEL.vocabulary.size} features)\n`,
);

const server = createServer((req, res) => {
  const header = req.headers["x-request-id"];
  const requestId = typeof header === "string" && SAFE_REQUEST_ID.test(header) ? header : randomUUID();
  handle(req, res, requestId).catch((err) => {
    const known = err instanceof HttpError;
    if (!known) process.stderr.write(`demo worker: ${req.method} ${req.url}: ${err.stack ?? err}\n`);
    if (res.headersSent) return res.destroy();
    const code = known ? err.code : 500;
    const type = known ? err.type : "InternalServerException";
    // After a 413 the rest of the body is unread; closing the connection keeps it out of the next request.
    const headers = code === 413 ? { Connection: "close" } : {};
    send(res, code, { code, type, message: known ? err.message : "internal error" }, headers);
  });
});

server.on("error", (err) => {
  process.stderr.write(`demo worker: cannot listen on ${options.host}:${options.port}: ${err.message}\n`);
  process.exit(1);
});

server.listen(PORT, options.host, () => {
  const address = server.address();
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  process.stdout.write(`demo worker listening on http://${host}:${address.port}\n`);
});

function shutdown(signal) {
  process.stdout.write(`demo worker: ${signal}, closing\n`);
  // close() drops idle keep-alive connections (Node >= 19) and waits for busy ones: give those 2 s.
  server.close(() => process.exit(0));
  setTimeout(() => server.closeAllConnections(), 2000).unref();
}
process.once("SIGTERM", () => shutdown("SIGTERM"));
process.once("SIGINT", () => shutdown("SIGINT"));
