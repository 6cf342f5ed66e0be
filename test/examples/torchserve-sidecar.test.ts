import { expect } from "chai";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { parseProperties } from "../../src/config/properties.js";
import { DEFAULT_SETTINGS, resolveSettings } from "../../src/config/settings.js";
import type { Settings } from "../../src/config/types.js";
import { createMemoryLogger } from "../../src/log.js";
import { REPO_ROOT } from "../support/cli.js";
import { parseUnit } from "../support/systemd-unit.js";
import { tempDir } from "../support/temp.js";

// The files the examples are made of; none can run here (no container runtime), so these tests
// hold them to each other and to the service: same paths, same port, valid configs. The Dockerfile:
// test/examples/dockerfile.test.ts.
const EXAMPLE_DIR = join(REPO_ROOT, "examples/torchserve-sidecar");
const SIDECAR_CONFIG = join(EXAMPLE_DIR, "config.properties");
const TORCHSERVE_CONFIG = join(EXAMPLE_DIR, "torchserve.properties");
/** Where the official TorchServe image writes its logs (it starts torchserve in /home/model-server). */
const LOGS_DIR = "/home/model-server/logs";
/** Where the image reads its settings (TS_CONFIG_FILE) and the examples mount the sidecar's config. */
const IMAGE_CONFIG = "/etc/serve-metrics/config.properties";
/** Where the TorchServe image reads its config.properties. */
const TORCHSERVE_IMAGE_CONFIG = "/home/model-server/config.properties";

function read(path: string): string {
  return readFileSync(path, "utf8");
}

/** The value of `key` as written in a config.properties text, or undefined. */
function property(text: string, key: string): string | undefined {
  return parseProperties(text)
    .find((entry) => entry.key === key)
    ?.value.trim();
}

/**
 * Resolves a config.properties text as the service would, with `LOGS_DIR` pointing at a real
 * directory here (a followed directory may have to exist); returns the settings and every warning.
 */
function resolveExample(text: string): { settings: Settings; warnings: string[] } {
  const dir = tempDir("sidecar-config-");
  const logs = join(dir, "logs");
  mkdirSync(logs);
  const file = join(dir, "config.properties");
  writeFileSync(file, text.replaceAll(LOGS_DIR, logs));
  const logger = createMemoryLogger();
  const settings = resolveSettings({ file, env: {}, logger, cwd: dir });
  return { settings, warnings: logger.lines.filter((line) => !line.startsWith("INFO ")) };
}

/** A record that must exist: fails the test naming `what` otherwise. */
function record(value: unknown, what: string): Record<string, unknown> {
  expect(value, what).to.be.an("object");
  return value as Record<string, unknown>;
}

function list(value: unknown, what: string): unknown[] {
  expect(value, what).to.be.an("array");
  return value as unknown[];
}

describe("examples/torchserve-sidecar and the systemd unit", function () {
  const sidecarText = read(SIDECAR_CONFIG);
  const torchserveText = read(TORCHSERVE_CONFIG);

  describe("the sidecar's config.properties", function () {
    it("resolves with no warning: every key is one the service reads (torchserve_* keys included)", function () {
      expect(resolveExample(sidecarText).warnings).to.deep.equal([]);
    });

    it("listens on all interfaces, so that the container is reachable, on port 8082", function () {
      const { settings } = resolveExample(sidecarText);
      expect(settings.metricsAddress).to.include({ protocol: "http", host: "0.0.0.0", port: 8082 });
      expect(settings.enableMetricsApi).to.equal(true);
    });

    it("serves everything on /metrics (not TorchServe's log or legacy mode) and follows the shared logs directory", function () {
      const { settings } = resolveExample(sidecarText);
      expect(settings.metricsMode).to.equal("prometheus");
      expect(property(sidecarText, "torchserve_log_dir")).to.equal(LOGS_DIR);
    });
  });

  describe("TorchServe's config.properties", function () {
    it("has only keys TorchServe reads (the service knows them all)", function () {
      expect(resolveExample(torchserveText).warnings).to.deep.equal([]);
    });

    it("writes metric lines (metrics_mode log or legacy) and leaves the sidecar's port free", function () {
      const sidecarPort = resolveExample(sidecarText).settings.metricsAddress.port;
      const { settings } = resolveExample(torchserveText);
      expect(["log", "legacy"]).to.include(settings.metricsMode);
      if (settings.enableMetricsApi) expect(settings.metricsAddress.port).to.not.equal(sidecarPort);
      expect(settings.inferenceAddress.port).to.not.equal(sidecarPort);
    });
  });

  describe("docker-compose.yml", function () {
    const compose = record(parseYaml(read(join(EXAMPLE_DIR, "docker-compose.yml"))), "the compose file");
    const services = record(compose.services, "services");
    const torchserve = record(services.torchserve, "services.torchserve");
    const sidecar = record(services["serve-metrics"], "services.serve-metrics");
    /** A service's short-syntax volumes as [source, target]. */
    const mounts = (service: Record<string, unknown>): [string, string][] =>
      list(service.volumes, "volumes").map((v) => {
        const [source = "", target = ""] = String(v).split(":");
        return [source, target];
      });

    it("mounts one named volume on TorchServe's logs directory in both containers", function () {
      const logsOf = (service: Record<string, unknown>): string[] =>
        mounts(service)
          .filter(([, target]) => target === LOGS_DIR)
          .map(([source]) => source);
      const [volume] = logsOf(torchserve);
      expect(volume).to.be.a("string");
      expect(logsOf(sidecar)).to.deep.equal([volume]);
      expect(record(compose.volumes, "volumes")).to.have.property(volume ?? "");
    });

    it("gives each container its config from this directory, where its image reads it", function () {
      expect(mounts(sidecar)).to.deep.include(["./config.properties", IMAGE_CONFIG]);
      expect(mounts(torchserve)).to.deep.include(["./torchserve.properties", TORCHSERVE_IMAGE_CONFIG]);
    });

    it("builds serve-metrics from the repository's Dockerfile and publishes the port its config listens on", function () {
      expect(resolve(EXAMPLE_DIR, String(sidecar.build))).to.equal(resolve(REPO_ROOT));
      const port = resolveExample(sidecarText).settings.metricsAddress.port;
      expect(list(sidecar.ports, "serve-metrics ports")).to.deep.equal([`${port}:${port}`]);
      const torchservePorts = list(torchserve.ports, "torchserve ports").map((p) => String(p).split(":")[1]);
      expect(torchservePorts).to.not.include(String(port));
    });
  });

  describe("pod.yaml", function () {
    const docs = parseAllDocuments(read(join(EXAMPLE_DIR, "pod.yaml"))).map((doc) => {
      expect(doc.errors).to.deep.equal([]);
      return record(doc.toJS(), "a manifest");
    });
    const configMap = docs.find((d) => d.kind === "ConfigMap");
    const pod = record(
      docs.find((d) => d.kind === "Pod"),
      "the Pod",
    );
    const spec = record(pod.spec, "spec");
    const containers = list(spec.containers, "containers").map((c) => record(c, "a container"));
    const container = (name: string): Record<string, unknown> =>
      record(
        containers.find((c) => c.name === name),
        `container ${name}`,
      );
    const volumeMounts = (name: string): Record<string, unknown>[] =>
      list(container(name).volumeMounts, `${name} volumeMounts`).map((m) => record(m, "a mount"));

    it("carries this directory's two configs unchanged in its ConfigMap", function () {
      const data = record(record(configMap, "the ConfigMap").data, "ConfigMap data");
      expect(data["serve-metrics.properties"]).to.equal(sidecarText);
      expect(data["torchserve.properties"]).to.equal(torchserveText);
    });

    it("shares an emptyDir on TorchServe's logs directory between both containers", function () {
      const volumes = list(spec.volumes, "volumes").map((v) => record(v, "a volume"));
      const logMount = (name: string): unknown =>
        volumeMounts(name).find((m) => m.mountPath === LOGS_DIR)?.name;
      const volume = logMount("torchserve");
      expect(volume).to.be.a("string");
      expect(logMount("serve-metrics")).to.equal(volume);
      expect(volumes.find((v) => v.name === volume)).to.have.property("emptyDir");
    });

    it("mounts each config where its image reads it", function () {
      const mountOf = (name: string, path: string): Record<string, unknown> | undefined =>
        volumeMounts(name).find((m) => m.mountPath === path);
      expect(mountOf("serve-metrics", IMAGE_CONFIG)).to.include({ subPath: "serve-metrics.properties" });
      expect(mountOf("torchserve", TORCHSERVE_IMAGE_CONFIG)).to.include({ subPath: "torchserve.properties" });
    });

    it("announces the sidecar's port to Prometheus, and no other container claims it", function () {
      const port = resolveExample(sidecarText).settings.metricsAddress.port;
      expect(record(record(pod.metadata, "metadata").annotations, "annotations")).to.include({
        "prometheus.io/scrape": "true",
        "prometheus.io/port": String(port),
        "prometheus.io/path": "/metrics",
      });
      const portsOf = (name: string): unknown[] =>
        list(container(name).ports, `${name} ports`).map((p) => record(p, "a port").containerPort);
      expect(portsOf("serve-metrics")).to.deep.equal([port]);
      expect(portsOf("torchserve")).to.not.include(port);
    });
  });

  describe("examples/serve-metrics.service", function () {
    const unit = parseUnit(read(join(REPO_ROOT, "examples/serve-metrics.service")));
    const service = unit.get("Service") ?? new Map<string, string[]>();
    const value = (key: string): string | undefined => service.get(key)?.at(-1);

    it("runs the installed command with a config, from a working directory, as a user other than root", function () {
      expect(value("ExecStart")).to.match(/\/node_modules\/\.bin\/serve-metrics --ts-config \S+$/);
      expect(value("WorkingDirectory")).to.match(/^\//);
      expect(value("User"))
        .to.be.a("string")
        .and.not.match(/^(root|0)$/);
    });

    it("restarts on failure but not on a configuration error (exit status 2)", function () {
      expect(value("Restart")).to.equal("on-failure");
      expect(value("RestartPreventExitStatus")?.split(/\s+/)).to.include("2");
    });

    it("signals the service alone and waits longer than its graceful stop (drain_timeout + 5 s to SIGKILL workers + 5 s OTLP export)", function () {
      expect(value("KillMode")).to.equal("mixed");
      expect(Number(value("TimeoutStopSec"))).to.be.greaterThan(DEFAULT_SETTINGS.drainTimeoutSeconds + 5 + 5);
    });
  });
});
