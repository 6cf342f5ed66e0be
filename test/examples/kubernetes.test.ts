import { expect } from "chai";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseAllDocuments } from "yaml";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { Deployment } from "kubernetes-models/apps/v1";
import { ConfigMap, Pod, Service } from "kubernetes-models/v1";
import { PodMonitor, ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { resolveSettings } from "../../src/config/settings.js";
import { createMemoryLogger } from "../../src/log.js";
import { REPO_ROOT } from "../support/cli.js";
import { tempDir } from "../support/temp.js";

// Every Kubernetes manifest under examples/, checked as an API server would take it: against the
// schemas of kubernetes-models and @kubernetes-models/prometheus-operator (generated from the
// Kubernetes OpenAPI and the Operator's CRDs), with no field the schema does not know (the
// validators allow unknown fields; a misspelt `securityContxt` would be silently dropped by the
// API server), and every pod against the "restricted" Pod Security Standard.

type Json = Record<string, unknown>;
/** A kubernetes-models class: its prototype's validate() runs the schema's validator on `this`. */
type ModelClass = { prototype: { validate(): void } };

const MODELS: Record<string, ModelClass> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Pod": Pod,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};

/** Every YAML file under examples/ whose documents are Kubernetes objects (apiVersion and kind). */
function manifestFiles(dir = join(REPO_ROOT, "examples")): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return manifestFiles(path);
    if (!/\.ya?ml$/.test(entry.name)) return [];
    return /^apiVersion:/m.test(readFileSync(path, "utf8")) ? [path] : [];
  });
}

function documents(path: string): Json[] {
  return parseAllDocuments(readFileSync(path, "utf8")).map((doc) => {
    expect(doc.errors, path).to.deep.equal([]);
    return doc.toJS() as Json;
  });
}

function obj(value: unknown, what: string): Json {
  expect(value, what).to.be.an("object");
  return value as Json;
}

function arr(value: unknown, what: string): Json[] {
  expect(value, what).to.be.an("array");
  return value as Json[];
}

/**
 * Runs the schema's validator on a copy of `data` that records which keys it reads: a key it never
 * reads (nor enumerates, as it does for maps such as labels) is unknown to the schema. Returns the
 * schema's errors (thrown) and the unknown fields' paths.
 */
function schemaProblems(model: ModelClass, data: Json): string[] {
  const keysAt = new Map<string, { keys: string[]; used: Set<string> }>();
  const track = (value: unknown, path: string): unknown => {
    if (value === null || typeof value !== "object") return value;
    const used = new Set<string>();
    keysAt.set(path, { keys: Array.isArray(value) ? [] : Object.keys(value), used });
    const wrapped = new Map<string, unknown>();
    return new Proxy(value, {
      get(target, key, receiver) {
        const child = Reflect.get(target, key, receiver) as unknown;
        if (typeof key !== "string") return child;
        used.add(key);
        if (!wrapped.has(key)) wrapped.set(key, track(child, `${path}/${key}`));
        return wrapped.get(key);
      },
      has(target, key) {
        if (typeof key === "string") used.add(key);
        return Reflect.has(target, key);
      },
      ownKeys(target) {
        for (const key of Object.keys(target)) used.add(key);
        return Reflect.ownKeys(target);
      },
    });
  };
  const problems: string[] = [];
  try {
    model.prototype.validate.call(track(data, ""));
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
  }
  for (const [path, { keys, used }] of keysAt)
    for (const key of keys) if (!used.has(key)) problems.push(`${path}/${key}: not a field of this kind`);
  return problems;
}

const RESTRICTED_VOLUMES = new Set([
  "configMap",
  "csi",
  "downwardAPI",
  "emptyDir",
  "ephemeral",
  "persistentVolumeClaim",
  "projected",
  "secret",
]);

/**
 * What the "restricted" Pod Security Standard (Kubernetes' pod-security admission, latest) refuses
 * in a pod spec, one line per violation; [] when the pod is admitted.
 */
function restrictedViolations(spec: Json): string[] {
  const found: string[] = [];
  const podSc = (spec.securityContext ?? {}) as Json;
  for (const host of ["hostNetwork", "hostPID", "hostIPC"])
    if (spec[host] === true) found.push(`${host}: true`);
  for (const volume of (spec.volumes ?? []) as Json[]) {
    const types = Object.keys(volume).filter((k) => k !== "name");
    for (const type of types)
      if (!RESTRICTED_VOLUMES.has(type)) found.push(`volume ${String(volume.name)}: ${type} is not allowed`);
  }
  const podSeccomp = (podSc.seccompProfile as Json | undefined)?.type;
  const containers = [
    ...((spec.initContainers ?? []) as Json[]),
    ...((spec.containers ?? []) as Json[]),
    ...((spec.ephemeralContainers ?? []) as Json[]),
  ];
  for (const c of containers) {
    const name = `container ${String(c.name)}`;
    const sc = (c.securityContext ?? {}) as Json;
    if (sc.privileged === true) found.push(`${name}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) found.push(`${name}: allowPrivilegeEscalation must be false`);
    const runAsNonRoot = sc.runAsNonRoot ?? podSc.runAsNonRoot;
    if (runAsNonRoot !== true) found.push(`${name}: runAsNonRoot must be true (pod or container)`);
    if ((sc.runAsUser ?? podSc.runAsUser) === 0) found.push(`${name}: runAsUser 0`);
    const seccomp = (sc.seccompProfile as Json | undefined)?.type ?? podSeccomp;
    if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost")
      found.push(`${name}: seccompProfile.type must be RuntimeDefault or Localhost (pod or container)`);
    const caps = (sc.capabilities ?? {}) as { drop?: string[]; add?: string[] };
    if (!(caps.drop ?? []).includes("ALL")) found.push(`${name}: capabilities.drop must include ALL`);
    const added = (caps.add ?? []).filter((cap) => cap !== "NET_BIND_SERVICE");
    if (added.length > 0) found.push(`${name}: capabilities.add ${added.join(",")}`);
    if (sc.procMount !== undefined && sc.procMount !== "Default") found.push(`${name}: procMount`);
    for (const port of (c.ports ?? []) as Json[])
      if (port.hostPort !== undefined && port.hostPort !== 0) found.push(`${name}: hostPort`);
  }
  if (podSeccomp === "Unconfined") found.push("pod: seccompProfile Unconfined");
  if (podSc.runAsUser === 0) found.push("pod: runAsUser 0");
  return found;
}

/** A CPU quantity in millicores, a memory quantity in bytes (the forms these manifests use). */
function quantity(value: unknown): number {
  const m = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi)?$/.exec(String(value));
  expect(m, `a quantity: ${String(value)}`).to.not.equal(null);
  const n = Number(m?.[1]);
  const unit = m?.[2];
  if (unit === "m") return n;
  if (unit === undefined) return n * 1000; // cores → millicores (memory here always has a unit)
  return n * { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 }[unit]!;
}

describe("the Kubernetes manifests in examples/", function () {
  const files = manifestFiles();
  const all = files.flatMap((file) =>
    documents(file).map((doc) => ({ file: relative(REPO_ROOT, file), doc })),
  );
  const ofKind = (kind: string): { file: string; doc: Json }[] => all.filter((m) => m.doc.kind === kind);
  /** Every pod spec: Pods' own and Deployments' templates. */
  const podSpecs = [
    ...ofKind("Pod").map(({ file, doc }) => ({
      where: `${file} Pod`,
      spec: obj(doc.spec, "spec"),
      meta: obj(doc.metadata, "metadata"),
    })),
    ...ofKind("Deployment").map(({ file, doc }) => {
      const template = obj(obj(doc.spec, "spec").template, "template");
      return {
        where: `${file} Deployment`,
        spec: obj(template.spec, "template.spec"),
        meta: obj(template.metadata, "template.metadata"),
      };
    }),
  ];
  const serveMetricsContainers = podSpecs.flatMap(({ where, spec }) =>
    arr(spec.containers, "containers")
      .filter((c) => /^serve-metrics(:|$)/.test(String(c.image)))
      .map((c) => ({ where, spec, container: c })),
  );

  it("finds the sidecar pod, its PodMonitor, and the frontend's Deployment, ServiceMonitor and autoscaler", function () {
    expect(files.map((f) => relative(REPO_ROOT, f)).sort()).to.include.members([
      "examples/kubernetes/frontend.yaml",
      "examples/torchserve-sidecar/pod.yaml",
      "examples/torchserve-sidecar/podmonitor.yaml",
    ]);
    for (const kind of [
      "Pod",
      "Deployment",
      "Service",
      "PodMonitor",
      "ServiceMonitor",
      "HorizontalPodAutoscaler",
    ])
      expect(ofKind(kind), kind).to.not.be.empty;
  });

  it("every manifest validates against its kind's schema, with no unknown field", function () {
    const problems = all.flatMap(({ file, doc }) => {
      const model = MODELS[`${String(doc.apiVersion)}/${String(doc.kind)}`];
      if (model === undefined)
        return [`${file}: ${String(doc.apiVersion)} ${String(doc.kind)} has no schema here`];
      return schemaProblems(model, doc).map((p) => `${file} ${String(doc.kind)}: ${p}`);
    });
    expect(problems).to.deep.equal([]);
  });

  it("the schema check catches a wrong type and a misspelt field, so its silence means something", function () {
    const pod = structuredClone(ofKind("Pod")[0]?.doc ?? {});
    const [container] = arr(obj(pod.spec, "spec").containers, "containers");
    obj(container, "container").securityContxt = obj(container, "container").securityContext;
    obj(container, "container").ports = [{ containerPort: "8082" }];
    const problems = schemaProblems(Pod, pod);
    expect(problems.join("\n"))
      .to.include("containerPort must be integer")
      .and.include("securityContxt: not a field");
  });

  it("every pod passes the restricted Pod Security Standard", function () {
    expect(podSpecs).to.have.length.greaterThanOrEqual(2);
    for (const { where, spec } of podSpecs) expect(restrictedViolations(spec), where).to.deep.equal([]);
  });

  it("the restricted check refuses what it should, so its silence means something", function () {
    const spec = structuredClone(podSpecs[0]?.spec ?? {});
    delete (spec.securityContext as Json).seccompProfile;
    const [first] = arr(spec.containers, "containers");
    obj(first, "container").securityContext = {
      allowPrivilegeEscalation: true,
      capabilities: { add: ["SYS_ADMIN"] },
    };
    spec.hostNetwork = true;
    (spec.volumes as Json[]).push({ name: "host", hostPath: { path: "/" } });
    const found = restrictedViolations(spec).join("\n");
    for (const expected of [
      "hostNetwork",
      "hostPath",
      "allowPrivilegeEscalation",
      "capabilities.drop",
      "capabilities.add",
      "seccompProfile",
    ])
      expect(found).to.include(expected);
  });

  it("serve-metrics runs on a read-only root filesystem, with readiness and liveness probes on its own ports", function () {
    expect(serveMetricsContainers).to.have.length.greaterThanOrEqual(2);
    for (const { where, container } of serveMetricsContainers) {
      expect(obj(container.securityContext, where).readOnlyRootFilesystem, where).to.equal(true);
      const portNames = arr(container.ports, "ports").map((p) => p.name);
      for (const probe of ["readinessProbe", "livenessProbe"]) {
        const get = obj(obj(container[probe], `${where} ${probe}`).httpGet, `${where} ${probe}.httpGet`);
        expect(["/ping", "/metrics"], `${where} ${probe}`).to.include(get.path);
        expect(portNames, `${where} ${probe} port`).to.include(get.port);
      }
      // Liveness must not hang on workers: /ping is unhealthy while a worker restarts.
      expect(obj(obj(container.livenessProbe, "liveness").httpGet, "httpGet").path).to.equal("/metrics");
    }
  });

  it("every container has CPU and memory requests and limits, requests within limits", function () {
    for (const { where, spec } of podSpecs)
      for (const c of arr(spec.containers, "containers")) {
        const resources = obj(c.resources, `${where} ${String(c.name)} resources`);
        const requests = obj(resources.requests, "requests");
        const limits = obj(resources.limits, "limits");
        expect(quantity(requests.memory)).to.be.at.most(quantity(limits.memory));
        expect(requests.cpu, `${where} ${String(c.name)} requests.cpu`).to.not.equal(undefined);
        if (limits.cpu !== undefined) expect(quantity(requests.cpu)).to.be.at.most(quantity(limits.cpu));
        if (/^serve-metrics/.test(String(c.image)))
          expect(limits.cpu, "serve-metrics limits.cpu").to.not.equal(undefined);
      }
  });

  it("the PodMonitor and ServiceMonitor select the pods and ports serve-metrics listens on, as job serve-metrics", function () {
    const matches = (selector: Json, labels: Json): boolean =>
      Object.entries(obj(selector.matchLabels, "matchLabels")).every(([k, v]) => labels[k] === v);
    for (const { doc } of ofKind("PodMonitor")) {
      const spec = obj(doc.spec, "spec");
      const pods = podSpecs.filter(({ meta }) =>
        matches(obj(spec.selector, "selector"), obj(meta.labels, "labels")),
      );
      expect(pods).to.have.length(1);
      const ports = arr(pods[0]?.spec.containers, "containers").flatMap((c) =>
        arr(c.ports, "ports").map((p) => p.name),
      );
      for (const endpoint of arr(spec.podMetricsEndpoints, "podMetricsEndpoints")) {
        expect(ports).to.include(endpoint.port);
        expect(endpoint.path).to.equal("/metrics");
        expect(endpoint.relabelings).to.deep.include({
          action: "replace",
          targetLabel: "job",
          replacement: "serve-metrics",
        });
      }
    }
    for (const { doc } of ofKind("ServiceMonitor")) {
      const spec = obj(doc.spec, "spec");
      const services = ofKind("Service").filter(({ doc: svc }) =>
        matches(obj(spec.selector, "selector"), obj(obj(svc.metadata, "metadata").labels, "labels")),
      );
      expect(services).to.have.length(1);
      const svcPorts = arr(obj(services[0]?.doc.spec, "spec").ports, "ports").map((p) => p.name);
      for (const endpoint of arr(spec.endpoints, "endpoints")) {
        expect(svcPorts).to.include(endpoint.port);
        expect(endpoint.relabelings).to.deep.include({
          action: "replace",
          targetLabel: "job",
          replacement: "serve-metrics",
        });
      }
    }
  });

  it("the autoscaler scales the frontend's Deployment on serve_requests_in_flight per pod, by model labels only", function () {
    const [hpa] = ofKind("HorizontalPodAutoscaler");
    const spec = obj(hpa?.doc.spec, "spec");
    const target = obj(spec.scaleTargetRef, "scaleTargetRef");
    const deployments = ofKind("Deployment").map(({ doc }) => obj(doc.metadata, "metadata").name);
    expect(target).to.include({ apiVersion: "apps/v1", kind: "Deployment" });
    expect(deployments).to.include(target.name);
    const [metric] = arr(spec.metrics, "metrics");
    const pods = obj(metric?.pods, "pods");
    expect(obj(pods.metric, "metric").name).to.equal("serve_requests_in_flight");
    const labels = Object.keys(
      obj(obj(obj(pods.metric, "metric").selector, "selector").matchLabels, "matchLabels"),
    );
    expect(labels.filter((l) => l !== "model_name" && l !== "model_version")).to.deep.equal([]);
    expect(obj(pods.target, "target").type).to.equal("AverageValue");
  });

  it("the frontend's config resolves with no warning, and its worker command is where the worker is mounted", function () {
    const [configMap] = ofKind("ConfigMap").filter(
      ({ file }) => file === "examples/kubernetes/frontend.yaml",
    );
    const text = String(obj(configMap?.doc.data, "data")["config.properties"]);
    const dir = tempDir("k8s-frontend-");
    mkdirSync(join(dir, "x"));
    const file = join(dir, "config.properties");
    writeFileSync(file, text);
    const logger = createMemoryLogger();
    const settings = resolveSettings({ file, env: {}, logger, cwd: dir });
    expect(logger.lines.filter((line) => !line.startsWith("INFO "))).to.deep.equal([]);
    const deployment = podSpecs.find(({ where }) => where.endsWith("Deployment"));
    const [container] = arr(deployment?.spec.containers, "containers");
    const port = (name: string): unknown =>
      arr(container?.ports, "ports").find((p) => p.name === name)?.containerPort;
    expect(settings.inferenceAddress.port).to.equal(port("inference"));
    expect(settings.metricsAddress.port).to.equal(port("metrics"));
    expect(settings.inferenceAddress.host).to.equal("0.0.0.0");
    const mounts = arr(container?.volumeMounts, "volumeMounts");
    const workerMount = mounts.find((m) => m.name === "demo-worker");
    expect(text).to.include(`node ${String(workerMount?.mountPath)}/worker.js --port {port}`);
  });
});
