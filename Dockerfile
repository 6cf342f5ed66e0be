# serve-metrics as a container image.
#   docker build -t serve-metrics --build-arg REVISION="$(git rev-parse HEAD)" .
#   docker run --rm -p 8082:8082 serve-metrics                     # this container's host metrics
#   docker run --rm -p 8082:8082 -v $PWD/my.properties:/etc/serve-metrics/config.properties serve-metrics
# Beside TorchServe: examples/torchserve-sidecar/ and docs/deploy.md.
# test/e2e/image.test.ts lints this file and runs its install and start steps without Docker.

# One Node major for both stages; it must be one that package.json's engines allow. 26 is the
# Active LTS line.
ARG NODE_MAJOR=26

# Build: dev dependencies (TypeScript), then the same tarball `npm publish` would upload.
FROM node:${NODE_MAJOR}-slim AS build
WORKDIR /build
COPY package.json package-lock.json ./
# No scripts: `prepare` would build before the sources are here; the build runs once below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json README.md LICENSE ./
COPY src ./src
RUN npm run build \
    && mkdir /pkg \
    && npm pack --ignore-scripts --pack-destination /pkg \
    && tar -xzf /pkg/serve-metrics-*.tgz -C /pkg \
    && cp package-lock.json /pkg/package/

# Run: the packed package (no sources, no tests) with its production dependencies installed from
# the lockfile, exactly the versions CI tested; no dev dependencies.
FROM node:${NODE_MAJOR}-slim
# package.json's version; test/e2e/image.test.ts holds the two equal. REVISION: the git commit.
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="serve-metrics" \
      org.opencontainers.image.description="TorchServe's Metrics API on OpenTelemetry: TorchServe-named metrics on :8082 for Prometheus, OTLP and Grafana" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="node:${NODE_MAJOR}-slim"
# tini as PID 1: it reaps every orphan re-parented to it (a crashed model worker's children, the
# worker guardian's), which Node does not, and forwards SIGTERM to the service, whose graceful
# stop is unchanged. Debian's package, so no download from outside the distribution.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /opt/serve-metrics
COPY --from=build /pkg/package/ ./
# `npm ci`, not `npm install`: the lockfile decides every indirect dependency. No scripts: nothing
# at run time needs one, and the package's own `prepare` (a build) must not run.
# The default settings bind all interfaces: 127.0.0.1 (the service's default) is unreachable from
# outside a container. Mount your own config.properties over this file, or pass --ts-config.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && npm cache clean --force \
    && chmod 755 dist/cli.js \
    && ln -s /opt/serve-metrics/dist/cli.js /usr/local/bin/serve-metrics \
    && mkdir -p /etc/serve-metrics \
    && printf '%s\n' 'metrics_address=http://0.0.0.0:8082' > /etc/serve-metrics/config.properties
ENV TS_CONFIG_FILE=/etc/serve-metrics/config.properties \
    SERVE_METRICS_HEALTHCHECK_URL=http://127.0.0.1:8082/metrics
# The image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it. TorchServe's
# image runs as uid 1000 too, so the files it writes on a shared volume are this user's to read.
USER 1000:1000
# Relative paths in a config (logs, metrics_config) resolve here; the user can write to it.
WORKDIR /home/node
EXPOSE 8082
# No curl in the image: Node asks. A config with another metrics port or path sets
# SERVE_METRICS_HEALTHCHECK_URL to match (docs/deploy.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch(process.env.SERVE_METRICS_HEALTHCHECK_URL,{method:'HEAD',signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "serve-metrics"]
