import { once } from "node:events";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";

/**
 * A test double for an OpenTelemetry Collector (none can be installed here): an OTLP metrics
 * receiver on loopback that decodes what the exporters send (HTTP JSON, HTTP protobuf, gRPC,
 * gzip or not) into plain values, and can be told to misbehave.
 */

/** Attribute values as OTLP carries them (the exporters send strings, numbers and booleans). */
export type ReceivedAttributes = Record<string, string | number | boolean>;

/** A histogram data point: count, sum and per-bucket (not cumulative) counts with their upper bounds. */
export interface HistogramValue {
  count: number;
  sum: number;
  buckets: { bounds: number[]; counts: number[] };
}

/** An exponential histogram data point: count, sum, scale, zero count and the positive buckets. */
export interface ExponentialValue {
  count: number;
  sum: number;
  scale: number;
  zeroCount: number;
  positive: { offset: number; bucketCounts: number[] };
}

/** One data point of a metric. */
export interface ReceivedPoint {
  attributes: ReceivedAttributes;
  value: number | HistogramValue | ExponentialValue;
}

/** One metric of one export. */
export interface ReceivedMetric {
  name: string;
  unit: string;
  type: "sum" | "gauge" | "histogram" | "exponential_histogram" | "other";
  points: ReceivedPoint[];
}

/** One export request as the receiver understood it. */
export interface ReceivedExport {
  protocol: "http/json" | "http/protobuf" | "grpc";
  /**
   * Whether the body came gzip-compressed; undefined for gRPC, whose messages grpc-js decompresses
   * (and whose grpc-encoding header it drops) before any handler sees them.
   */
  gzip: boolean | undefined;
  /** Request headers (HTTP) or metadata (gRPC), lower-case names. */
  headers: Record<string, string>;
  resource: ReceivedAttributes;
  metrics: ReceivedMetric[];
}

/**
 * How the receiver answers: `ok`; `refuse` closes every connection as soon as it opens (and the
 * open ones when switched to); `unavailable` answers HTTP 503 or gRPC UNAVAILABLE; `hang` reads
 * the request and never answers. HTTP only: `drip` answers a 200 one byte every
 * {@link OtlpReceiver.dripIntervalMs}, never finishing before the exporter's timeout; `cut` sends
 * a 200's head and half its body, then closes the connection.
 */
export type ReceiverMode = "ok" | "refuse" | "unavailable" | "hang" | "drip" | "cut";

/** What `drip` sends, a byte at a time: a 200 with a body long enough to outlast any test. */
const DRIPPED_ANSWER = `HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 4096\r\n\r\n${"\0".repeat(4096)}`;

const SCHEMA = protobuf.loadSync(fileURLToPath(new URL("./otlp-metrics.proto", import.meta.url)));
const REQUEST = SCHEMA.lookupType("serve_metrics.test.otlp.ExportMetricsServiceRequest");
const RESPONSE = SCHEMA.lookupType("serve_metrics.test.otlp.ExportMetricsServiceResponse");

/** Decodes a protobuf ExportMetricsServiceRequest into the same camelCase shape as OTLP/JSON. */
export function decodeProtobufRequest(bytes: Uint8Array): unknown {
  return REQUEST.toObject(REQUEST.decode(bytes), { longs: Number, arrays: true, defaults: false });
}

/** The OTLP receiver; start one with {@link OtlpReceiver.startHttp} or {@link OtlpReceiver.startGrpc}. */
export class OtlpReceiver {
  /** Exports received and answered with success, oldest first. */
  readonly exports: ReceivedExport[] = [];
  /** Requests that reached the receiver in any mode but `refuse` (which never reads one). */
  requests = 0;
  /** Connections closed by `refuse`. */
  refused = 0;
  /** Requests `hang` holds unanswered right now, and the most it ever held at once. */
  held = 0;
  maxHeld = 0;
  /** Connections open to the receiver right now, and the most that were ever open at once. */
  get openConnections(): number {
    return this.connections.size;
  }
  maxConnections = 0;
  /** How often `drip` sends its next byte. */
  dripIntervalMs = 200;
  /** Bodies the receiver could not decode: a test that expects exports should also expect none here. */
  readonly decodeErrors: string[] = [];
  /** The URL to give the exporter: `http://127.0.0.1:P/v1/metrics` (HTTP) or `http://127.0.0.1:P` (gRPC). */
  endpoint = "";
  private mode: ReceiverMode = "ok";
  private readonly connections = new Set<Socket>();
  private readonly heldAnswers = new Set<() => void>();
  private readonly waiters = new Set<() => void>();
  private readonly drips = new Set<() => void>();
  private readonly closeBackend: () => Promise<void>;
  private readonly front = createNetServer((socket) => this.accept(socket));

  private readonly backendPort: number;

  private constructor(backendPort: number, closeBackend: () => Promise<void>) {
    this.backendPort = backendPort;
    this.closeBackend = closeBackend;
  }

  /** A receiver for OTLP/HTTP, JSON and protobuf, on `/v1/metrics`. */
  static async startHttp(): Promise<OtlpReceiver> {
    // Only the front door is published, and it opens after `receiver` exists.
    const server = createHttpServer((req, res) => receiver.handleHttp(req, res));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as AddressInfo).port;
    const receiver = new OtlpReceiver(port, async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    });
    await receiver.listen("/v1/metrics");
    return receiver;
  }

  /** A receiver for OTLP/gRPC (`MetricsService/Export`, insecure). */
  static async startGrpc(): Promise<OtlpReceiver> {
    const server = new grpc.Server();
    const service: grpc.ServiceDefinition = {
      Export: {
        path: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        requestStream: false,
        responseStream: false,
        // The same decoder as for HTTP protobuf, run by grpc-js on every (already decompressed) message.
        requestDeserialize: (bytes: Buffer): unknown => decodeProtobufRequest(bytes),
        requestSerialize: (): Buffer => Buffer.alloc(0),
        responseSerialize: (): Buffer => Buffer.from(RESPONSE.encode(RESPONSE.create({})).finish()),
        responseDeserialize: (bytes: Buffer): unknown => bytes,
      },
    };
    server.addService(service, {
      Export: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) =>
        receiver.handleGrpc(call, callback),
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, bound) =>
        err === null ? resolve(bound) : reject(err),
      );
    });
    const receiver = new OtlpReceiver(port, () => {
      // forceShutdown: hung calls would keep tryShutdown waiting forever.
      server.forceShutdown();
      return Promise.resolve();
    });
    await receiver.listen("");
    return receiver;
  }

  /** Changes how the receiver answers from now on. */
  setMode(mode: ReceiverMode): void {
    this.mode = mode;
    // Both act at the front door, which open connections have passed already.
    if (mode === "refuse" || mode === "drip") for (const socket of this.connections) socket.destroy();
  }

  /** Resolves with the first export (already received or still to come) that satisfies `test`. */
  async waitForExport(
    test: (e: ReceivedExport) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<ReceivedExport> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.exports.find(test);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no matching OTLP export within ${timeoutMs} ms (${this.exports.length} received)`);
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.waiters.add(wake);
      });
    }
  }

  /** Resolves once `count` more exports than now have arrived. */
  async waitForMoreExports(count = 1, timeoutMs = 10_000): Promise<ReceivedExport> {
    const target = this.exports.length + count - 1;
    return this.waitForExport((e) => this.exports.indexOf(e) >= target, timeoutMs);
  }

  /** The most recent export; throws when there is none. */
  latest(): ReceivedExport {
    const last = this.exports.at(-1);
    if (last === undefined) throw new Error("no OTLP export received");
    return last;
  }

  /** Closes every connection and both servers. */
  async close(): Promise<void> {
    for (const stop of this.drips) stop();
    for (const socket of this.connections) socket.destroy();
    this.front.close();
    await Promise.all([once(this.front, "close"), this.closeBackend()]);
  }

  private async listen(path: string): Promise<void> {
    this.front.listen(0, "127.0.0.1");
    await once(this.front, "listening");
    this.endpoint = `http://127.0.0.1:${(this.front.address() as AddressInfo).port}${path}`;
  }

  /**
   * Every connection goes through this front door, a plain TCP relay to the real server, so that
   * `refuse` can cut HTTP/1.1 keep-alive and HTTP/2 (gRPC) connections alike.
   */
  private accept(client: Socket): void {
    client.on("error", () => undefined);
    if (this.mode === "refuse") {
      this.refused++;
      client.destroy();
      return;
    }
    this.connections.add(client);
    this.maxConnections = Math.max(this.maxConnections, this.connections.size);
    client.on("close", () => this.connections.delete(client));
    if (this.mode === "drip") {
      this.drip(client);
      return;
    }
    const backend = connect(this.backendPort, "127.0.0.1");
    backend.on("error", () => client.destroy());
    client.on("close", () => backend.destroy());
    backend.on("close", () => client.destroy());
    client.pipe(backend).pipe(client);
  }

  /**
   * `drip`, done at the front door where bytes can be timed: every request on the connection
   * (read, not parsed) is answered with {@link DRIPPED_ANSWER}, a byte per interval.
   */
  private drip(client: Socket): void {
    let timer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      clearInterval(timer);
      this.drips.delete(stop);
    };
    this.drips.add(stop);
    client.on("close", stop);
    client.on("data", () => {
      if (timer !== undefined) return;
      this.requests++;
      let sent = 0;
      timer = setInterval(() => {
        if (sent < DRIPPED_ANSWER.length) client.write(DRIPPED_ANSWER.charAt(sent++));
      }, this.dripIntervalMs);
    });
  }

  private handleHttp(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      this.requests++;
      if (this.mode === "hang") {
        // Answered late by answerHeld() (without recording: the test has moved on), or never.
        const answer = (): void => void res.writeHead(200).end();
        this.hold(answer);
        res.on("close", () => this.release(answer));
        return;
      }
      if (this.mode === "unavailable") {
        res.writeHead(503, { "content-type": "text/plain" }).end("collector unavailable (test)");
        return;
      }
      if (this.mode === "cut") {
        // Half of what the head promises, then the connection ends: nothing is recorded.
        res.writeHead(200, { "content-type": "application/x-protobuf", "content-length": "64" });
        res.write(Buffer.alloc(32), () => res.destroy());
        return;
      }
      // The path decides; a query (an endpoint may carry a token there) is the exporter's business.
      if (req.method !== "POST" || new URL(req.url ?? "", "http://receiver").pathname !== "/v1/metrics") {
        res.writeHead(404).end();
        return;
      }
      const gzip = req.headers["content-encoding"] === "gzip";
      const json = (req.headers["content-type"] ?? "").startsWith("application/json");
      try {
        const body = gzip ? gunzipSync(Buffer.concat(chunks)) : Buffer.concat(chunks);
        const decoded: unknown = json ? JSON.parse(body.toString("utf8")) : decodeProtobufRequest(body);
        this.record({
          protocol: json ? "http/json" : "http/protobuf",
          gzip,
          headers: flattenHeaders(req.headers),
          ...normalizeRequest(decoded),
        });
      } catch (err) {
        this.decodeErrors.push(String(err));
        res.writeHead(400).end(String(err));
        return;
      }
      if (json) res.writeHead(200, { "content-type": "application/json" }).end("{}");
      else res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  }

  private handleGrpc(
    call: grpc.ServerUnaryCall<unknown, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ): void {
    this.requests++;
    if (this.mode === "hang") {
      const answer = (): void => callback(null, {});
      this.hold(answer);
      call.on("cancelled", () => this.release(answer));
      return;
    }
    if (this.mode === "unavailable") {
      callback({ code: grpc.status.UNAVAILABLE, details: "collector unavailable (test)" });
      return;
    }
    const headers = call.metadata.getMap();
    try {
      this.record({
        protocol: "grpc",
        gzip: undefined,
        headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, String(v)])),
        ...normalizeRequest(call.request),
      });
    } catch (err) {
      this.decodeErrors.push(String(err));
      callback({ code: grpc.status.INVALID_ARGUMENT, details: String(err) });
      return;
    }
    callback(null, {});
  }

  /** Answers every request `hang` holds with success, as a slow collector finally would. */
  answerHeld(): void {
    for (const answer of [...this.heldAnswers]) {
      this.release(answer);
      answer();
    }
  }

  private hold(answer: () => void): void {
    this.heldAnswers.add(answer);
    this.held = this.heldAnswers.size;
    this.maxHeld = Math.max(this.maxHeld, this.held);
  }

  private release(answer: () => void): void {
    this.heldAnswers.delete(answer);
    this.held = this.heldAnswers.size;
  }

  private record(received: ReceivedExport): void {
    this.exports.push(received);
    for (const wake of [...this.waiters]) wake();
  }
}

function flattenHeaders(headers: IncomingMessage["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Normalizing OTLP (the camelCase shape of both OTLP/JSON and the protobuf decoder's objects)

type Json = Record<string, unknown>;

function asObject(value: unknown): Json {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : {};
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** A number from OTLP, where 64-bit integers may arrive as strings (JSON) or numbers. */
function asNumber(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "string") return Number(value);
  return 0;
}

function attributesOf(list: unknown): ReceivedAttributes {
  const out: ReceivedAttributes = {};
  for (const item of asArray(list)) {
    const { key, value } = asObject(item);
    const any = asObject(value);
    if (typeof key !== "string") continue;
    if (typeof any.stringValue === "string") out[key] = any.stringValue;
    else if (typeof any.boolValue === "boolean") out[key] = any.boolValue;
    else if (any.intValue !== undefined) out[key] = asNumber(any.intValue);
    else if (any.doubleValue !== undefined) out[key] = asNumber(any.doubleValue);
  }
  return out;
}

/** An ExportMetricsServiceRequest (decoded) as the resource's attributes and plain metrics. */
export function normalizeRequest(request: unknown): {
  resource: ReceivedAttributes;
  metrics: ReceivedMetric[];
} {
  const resourceMetrics = asArray(asObject(request).resourceMetrics).map(asObject);
  const resource = attributesOf(asObject(resourceMetrics[0]?.resource).attributes);
  const metrics: ReceivedMetric[] = [];
  for (const rm of resourceMetrics) {
    for (const sm of asArray(rm.scopeMetrics).map(asObject)) {
      for (const m of asArray(sm.metrics).map(asObject)) metrics.push(normalizeMetric(m));
    }
  }
  return { resource, metrics };
}

function normalizeMetric(m: Json): ReceivedMetric {
  const name = typeof m.name === "string" ? m.name : "";
  const unit = typeof m.unit === "string" ? m.unit : "";
  const numberPoints = (data: unknown): ReceivedPoint[] =>
    asArray(asObject(data).dataPoints)
      .map(asObject)
      .map((p) => ({
        attributes: attributesOf(p.attributes),
        value: p.asDouble !== undefined ? asNumber(p.asDouble) : asNumber(p.asInt),
      }));
  if (m.sum !== undefined) return { name, unit, type: "sum", points: numberPoints(m.sum) };
  if (m.gauge !== undefined) return { name, unit, type: "gauge", points: numberPoints(m.gauge) };
  if (m.histogram !== undefined) {
    const points = asArray(asObject(m.histogram).dataPoints)
      .map(asObject)
      .map((p) => ({
        attributes: attributesOf(p.attributes),
        value: {
          count: asNumber(p.count),
          sum: asNumber(p.sum),
          buckets: {
            bounds: asArray(p.explicitBounds).map(asNumber),
            counts: asArray(p.bucketCounts).map(asNumber),
          },
        },
      }));
    return { name, unit, type: "histogram", points };
  }
  if (m.exponentialHistogram !== undefined) {
    const points = asArray(asObject(m.exponentialHistogram).dataPoints)
      .map(asObject)
      .map((p) => {
        const positive = asObject(p.positive);
        return {
          attributes: attributesOf(p.attributes),
          value: {
            count: asNumber(p.count),
            sum: asNumber(p.sum),
            scale: p.scale === undefined ? 0 : asNumber(p.scale),
            zeroCount: p.zeroCount === undefined ? 0 : asNumber(p.zeroCount),
            positive: {
              offset: positive.offset === undefined ? 0 : asNumber(positive.offset),
              bucketCounts: asArray(positive.bucketCounts).map(asNumber),
            },
          },
        };
      });
    return { name, unit, type: "exponential_histogram", points };
  }
  return { name, unit, type: "other", points: [] };
}
