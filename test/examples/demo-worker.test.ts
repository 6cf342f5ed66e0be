import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { Agent, request as httpRequest, type IncomingHttpHeaders } from "node:http";

import { hostname } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { REPO_ROOT } from "../support/cli.js";
import { freePort } from "../support/net.js";

const WORKER = "examples/demo-worker/worker.js";

/** Held-out sentences: none is in sentences.json (checked below), so these test generalisation. */
const POSITIVE = "The waiter was friendly and the pasta was delicious.";
const NEGATIVE = "Terrible support, my order arrived broken and late.";
const HELD_OUT: [string, "positive" | "negative"][] = [
  [POSITIVE, "positive"],
  [NEGATIVE, "negative"],
  ["An excellent film with a wonderful cast.", "positive"],
  ["The room was dirty and the staff were rude.", "negative"],
  ["I love this keyboard, typing is a pleasure.", "positive"],
  ["The soup was cold and tasteless.", "negative"],
  ["Great coffee, lovely staff, I will be back.", "positive"],
  ["The update is buggy and the app keeps crashing.", "negative"],
  ["My steak was not good.", "negative"],
  ["Not bad at all, quite enjoyable.", "positive"],
  // These need the negation features: as a bag of plain words they come out the other way.
  ["The service was not great.", "negative"],
  ["The staff were not helpful.", "negative"],
  ["Not a bad phone.", "positive"],
];

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  json: unknown;
}

/** A running worker and everything it has printed so far. */
interface Worker {
  child: ChildProcess;
  base: string;
  stdout: string[];
  stderr: string[];
}

/** Starts the worker with plain `node` (no TypeScript loader), as the service starts it. */
async function startWorker(extraArgs: string[] = []): Promise<Worker> {
  const port = await freePort();
  const child = spawn(process.execPath, [WORKER, "--port", String(port), ...extraArgs], {
    cwd: REPO_ROOT,
    env: { ...process.env, NODE_OPTIONS: "" },
  });
  const worker: Worker = { child, base: `http://127.0.0.1:${port}`, stdout: [], stderr: [] };
  collectLines(child.stdout, worker.stdout);
  collectLines(child.stderr, worker.stderr);
  await waitFor(worker, () => worker.stdout.includes(`demo worker listening on ${worker.base}`), "listening");
  return worker;
}

function collectLines(stream: NodeJS.ReadableStream | null, into: string[]): void {
  let partial = "";
  stream?.setEncoding("utf8");
  stream?.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop() ?? "";
    into.push(...parts);
  });
}

/** Polls until `done()`; stdout and the response arrive on different pipes, in either order. */
async function waitFor(worker: Worker, done: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !done(); waited += 10) {
    if (worker.child.exitCode !== null || waited > 10_000) {
      throw new Error(
        `worker: no ${what} (exit ${worker.child.exitCode}):\n${[...worker.stdout, ...worker.stderr].join("\n")}`,
      );
    }
    await sleep(10);
  }
}

function stop(worker: Worker): Promise<void> {
  if (worker.child.exitCode !== null || worker.child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => worker.child.once("exit", () => resolve()));
  worker.child.kill("SIGKILL");
  return exited;
}

function send(
  url: string,
  options: { method?: string; body?: string; headers?: Record<string, string>; agent?: Agent } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: options.method ?? "POST", headers: options.headers, agent: options.agent ?? false },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => {
          try {
            resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(text) as unknown });
          } catch {
            reject(new Error(`not JSON (${res.statusCode}): ${text}`));
          }
        });
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

const json = (body: unknown): { body: string; headers: Record<string, string> } => ({
  body: JSON.stringify(body),
  headers: { "Content-Type": "application/json" },
});

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The exact `[METRICS]` line a TorchServe Python backend prints; captures the value and the epoch. */
function metricLinePattern(metric: string, model: string, requestId: string): RegExp {
  return new RegExp(
    `^\\[METRICS\\]${metric}\\.Milliseconds:(\\d+\\.\\d{2})\\|#ModelName:${escapeRegExp(model)},Level:Model` +
      `\\|#type:GAUGE\\|#hostname:${escapeRegExp(hostname())},(\\d+),${escapeRegExp(requestId)}$`,
  );
}

describe("examples/demo-worker", function () {
  this.timeout(30_000);
  let worker: Worker;

  before(async () => {
    worker = await startWorker();
  });
  after(() => stop(worker));

  it("answers GET /ping with 200 Healthy", async () => {
    const res = await send(`${worker.base}/ping`, { method: "GET" });
    expect(res.status).to.equal(200);
    expect(res.json).to.deep.equal({ status: "Healthy" });
  });

  it("tests on sentences that are not in its training data", () => {
    const training = readFileSync(join(REPO_ROOT, "examples/demo-worker/sentences.json"), "utf8");
    for (const [sentence] of HELD_OUT) expect(training).not.to.include(sentence);
  });

  it("classifies held-out sentences correctly (KServe v1 batch)", async () => {
    const res = await send(
      `${worker.base}/v1/models/sentiment:predict`,
      json({ instances: HELD_OUT.map(([s]) => s) }),
    );
    expect(res.status).to.equal(200);
    const { predictions } = res.json as { predictions: { label: string; score: number }[] };
    expect(predictions.map((p) => p.label)).to.deep.equal(HELD_OUT.map(([, label]) => label));
  });

  describe("classifies a positive and a negative sentence", () => {
    for (const [sentence, label] of [
      [POSITIVE, "positive"],
      [NEGATIVE, "negative"],
    ] as const) {
      it(`on /predictions (text body): ${label}`, async () => {
        const res = await send(`${worker.base}/predictions/sentiment`, {
          body: sentence,
          headers: { "Content-Type": "text/plain" },
        });
        expect(res.status).to.equal(200);
        expect(res.json).to.have.keys("label", "score");
        const { label: got, score } = res.json as { label: string; score: number };
        expect(got).to.equal(label);
        expect(score).to.be.within(0.5, 1);
      });

      it(`on /predictions/{model}/{version} (JSON body): ${label}`, async () => {
        const res = await send(`${worker.base}/predictions/sentiment/1.0`, json({ text: sentence }));
        expect(res.status).to.equal(200);
        expect(res.json).to.include({ label });
      });

      it(`on /explanations, with per-token contributions: ${label}`, async () => {
        const res = await send(`${worker.base}/explanations/sentiment`, { body: sentence });
        expect(res.status).to.equal(200);
        const body = res.json as { label: string; tokens: { token: string; contribution: number }[] };
        expect(body.label).to.equal(label);
        const strongest = [...body.tokens].sort((a, b) => b.contribution - a.contribution)[0];
        expect(label === "positive" ? ["friendly", "delicious"] : ["terrible", "broken"]).to.include(
          strongest?.token,
        );
        expect(strongest?.contribution).to.be.greaterThan(0);
      });

      it(`on /v1/models/{model}:explain: ${label}`, async () => {
        const res = await send(`${worker.base}/v1/models/sentiment:explain`, json({ instances: [sentence] }));
        expect(res.status).to.equal(200);
        const { explanations } = res.json as { explanations: { label: string; tokens: unknown[] }[] };
        expect(explanations).to.have.length(1);
        expect(explanations[0]?.label).to.equal(label);
        expect(explanations[0]?.tokens).not.to.be.empty;
      });
    }

    it("on /v1/models/{model}:predict, in instance order", async () => {
      const res = await send(
        `${worker.base}/v1/models/sentiment:predict`,
        json({ instances: [NEGATIVE, { text: POSITIVE }] }),
      );
      expect(res.status).to.equal(200);
      const { predictions } = res.json as { predictions: { label: string }[] };
      expect(predictions.map((p) => p.label)).to.deep.equal(["negative", "positive"]);
    });

    it("on /v2/models/{model}/versions/{version}/infer, as KServe v2 outputs", async () => {
      const res = await send(
        `${worker.base}/v2/models/sentiment/versions/2/infer`,
        json({
          id: "req-7",
          inputs: [{ name: "text", shape: [2], datatype: "BYTES", data: [POSITIVE, NEGATIVE] }],
        }),
      );
      expect(res.status).to.equal(200);
      const body = res.json as {
        outputs: { name: string; shape: number[]; datatype: string; data: unknown[] }[];
      };
      expect(body).to.include({ model_name: "sentiment", model_version: "2", id: "req-7" });
      expect(body.outputs.map((o) => [o.name, o.datatype, o.shape])).to.deep.equal([
        ["label", "BYTES", [2]],
        ["score", "FP32", [2]],
      ]);
      expect(body.outputs[0]?.data).to.deep.equal(["positive", "negative"]);
    });

    it("on /v2/models/{model}/infer", async () => {
      const res = await send(
        `${worker.base}/v2/models/sentiment/infer`,
        json({ inputs: [{ name: "text", shape: [1], datatype: "BYTES", data: [NEGATIVE] }] }),
      );
      expect(res.status).to.equal(200);
      expect((res.json as { outputs: { data: unknown[] }[] }).outputs[0]?.data).to.deep.equal(["negative"]);
    });
  });

  describe("[METRICS] lines", () => {
    const paths = [
      "/predictions/sentiment",
      "/predictions/sentiment/1.0",
      "/explanations/sentiment",
      "/v1/models/sentiment:predict",
      "/v1/models/sentiment:explain",
      "/v2/models/sentiment/infer",
      "/v2/models/sentiment/versions/3/infer",
    ];
    const bodyFor = (path: string): { body: string; headers: Record<string, string> } =>
      path.startsWith("/v1")
        ? json({ instances: [POSITIVE] })
        : path.startsWith("/v2")
          ? json({ inputs: [{ name: "text", shape: [1], datatype: "BYTES", data: [POSITIVE] }] })
          : { body: POSITIVE, headers: {} };

    for (const [i, path] of paths.entries()) {
      it(`prints HandlerTime then PredictionTime, in TorchServe's format, for POST ${path}`, async () => {
        const id = `metrics-${i}`;
        const { body, headers } = bodyFor(path);
        const before = Math.floor(Date.now() / 1000);
        const res = await send(`${worker.base}${path}`, {
          body,
          headers: { ...headers, "x-request-id": id },
        });
        expect(res.status).to.equal(200);
        expect(res.headers["x-request-id"]).to.equal(id);
        const mine = (): string[] => worker.stdout.filter((l) => l.endsWith(`,${id}`));
        await waitFor(worker, () => mine().length >= 2, `[METRICS] lines for ${id}`);
        await sleep(50); // a third line would arrive now
        const [handler, prediction, ...extra] = mine();
        expect(extra).to.be.empty;
        const h = metricLinePattern("HandlerTime", "sentiment", id).exec(handler ?? "");
        const p = metricLinePattern("PredictionTime", "sentiment", id).exec(prediction ?? "");
        expect(h, handler).not.to.be.null;
        expect(p, prediction).not.to.be.null;
        for (const match of [h, p]) {
          expect(Number(match?.[2])).to.be.within(before, Math.floor(Date.now() / 1000));
        }
        // HandlerTime is the model's work inside PredictionTime's span.
        expect(Number(h?.[1])).to.be.at.most(Number(p?.[1]));
      });
    }

    it("uses a fresh UUID as request id when the request has no x-request-id", async () => {
      const res = await send(`${worker.base}/predictions/sentiment`, { body: NEGATIVE });
      const id = res.headers["x-request-id"];
      expect(id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      await waitFor(worker, () => worker.stdout.some((l) => l.endsWith(`,${String(id)}`)), "a line");
      const line = worker.stdout.find(
        (l) => l.startsWith("[METRICS]PredictionTime") && l.endsWith(`,${String(id)}`),
      );
      expect(line).to.match(metricLinePattern("PredictionTime", "sentiment", String(id)));
    });

    it("replaces an x-request-id that would break the line protocol", async () => {
      const res = await send(`${worker.base}/predictions/sentiment`, {
        body: POSITIVE,
        headers: { "x-request-id": "a,b|c" },
      });
      expect(res.headers["x-request-id"]).to.match(/^[0-9a-f-]{36}$/);
    });
  });

  describe("bad input", () => {
    const cases: [string, string, { body: string; headers?: Record<string, string> }][] = [
      ["an empty body", "/predictions/sentiment", { body: "" }],
      ["a blank body", "/explanations/sentiment", { body: "  \n" }],
      ["invalid JSON declared as JSON", "/predictions/sentiment", { body: "{", headers: json(0).headers }],
      ["invalid JSON on v1", "/v1/models/sentiment:predict", { body: "{not json" }],
      ["v1 without instances", "/v1/models/sentiment:predict", json({ inputs: ["x"] })],
      ["v1 with an empty instance", "/v1/models/sentiment:explain", json({ instances: ["ok", ""] })],
      ["v1 with a number instance", "/v1/models/sentiment:predict", json({ instances: [42] })],
      ["invalid JSON on v2", "/v2/models/sentiment/infer", { body: '{"inputs": [' }],
      ["v2 without inputs[0].data", "/v2/models/sentiment/infer", json({ inputs: [{ name: "t" }] })],
      [
        "v2 with a non-BYTES datatype",
        "/v2/models/sentiment/infer",
        json({ inputs: [{ name: "t", datatype: "FP32", data: [1] }] }),
      ],
      ["an empty v2 body", "/v2/models/sentiment/infer", { body: "" }],
    ];
    for (const [what, path, { body, headers }] of cases) {
      it(`answers ${what} with 400 JSON and prints no [METRICS] line`, async () => {
        const id = `bad-${what.replace(/\W+/g, "-")}`;
        const res = await send(`${worker.base}${path}`, {
          body,
          headers: { ...headers, "x-request-id": id },
        });
        expect(res.status).to.equal(400);
        expect(res.json).to.include({ code: 400, type: "BadRequestException" });
        expect((res.json as { message: unknown }).message).to.be.a("string").and.not.be.empty;
        // Lines are printed in order: once a later request's lines are out, none for this one can follow.
        const marker = `${id}-then-good`;
        await send(`${worker.base}/predictions/sentiment`, {
          body: POSITIVE,
          headers: { "x-request-id": marker },
        });
        await waitFor(
          worker,
          () => worker.stdout.some((l) => l.endsWith(`,${marker}`)),
          "the good request's lines",
        );
        expect(worker.stdout.filter((l) => l.endsWith(`,${id}`))).to.be.empty;
      });
    }
  });

  it("reads nested v2 data (shape [2, 1]) row-major", async () => {
    const res = await send(
      `${worker.base}/v2/models/sentiment/infer`,
      json({ inputs: [{ name: "text", shape: [2, 1], datatype: "BYTES", data: [[NEGATIVE], [POSITIVE]] }] }),
    );
    expect(res.status).to.equal(200);
    expect((res.json as { outputs: { data: unknown[] }[] }).outputs[0]?.data).to.deep.equal([
      "negative",
      "positive",
    ]);
  });

  it("answers a body over 1 MiB with 413 JSON", async () => {
    const res = await send(`${worker.base}/predictions/sentiment`, { body: "good ".repeat(300_000) });
    expect(res.status).to.equal(413);
    expect(res.json).to.include({ code: 413, type: "RequestEntityTooLargeException" });
  });

  it("answers an unknown path with 404 JSON", async () => {
    const res = await send(`${worker.base}/nowhere`, { body: "x" });
    expect(res.status).to.equal(404);
    expect(res.json).to.include({ code: 404, type: "ResourceNotFoundException" });
  });

  it("answers GET on an inference path with 405", async () => {
    const res = await send(`${worker.base}/predictions/sentiment`, { method: "GET" });
    expect(res.status).to.equal(405);
    expect(res.json).to.include({ code: 405, type: "MethodNotAllowedException" });
  });

  it("with --models, answers other model names with 404 ModelNotFoundException", async () => {
    const only = await startWorker(["--models", "sentiment"]);
    try {
      expect((await send(`${only.base}/predictions/sentiment`, { body: POSITIVE })).status).to.equal(200);
      const res = await send(`${only.base}/predictions/other`, { body: POSITIVE });
      expect(res.status).to.equal(404);
      expect(res.json).to.include({ code: 404, type: "ModelNotFoundException" });
    } finally {
      await stop(only);
    }
  });

  it("closes and exits 0 on SIGTERM, even with an idle keep-alive connection open", async () => {
    const own = await startWorker();
    const agent = new Agent({ keepAlive: true });
    try {
      expect((await send(`${own.base}/ping`, { method: "GET", agent })).status).to.equal(200);
      const exit = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        own.child.once("exit", (code, signal) => resolve([code, signal])),
      );
      own.child.kill("SIGTERM");
      const started = Date.now();
      expect(await exit).to.deep.equal([0, null]);
      expect(Date.now() - started).to.be.below(1500); // not the 2 s fallback for busy connections
      expect(own.stdout).to.include("demo worker: SIGTERM, closing");
    } finally {
      agent.destroy();
      await stop(own);
    }
  });
});
