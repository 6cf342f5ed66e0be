# serve-metrics as a container image.
#   docker build -t serve-metrics .
#   docker run --rm -p 8082:8082 serve-metrics                     # this container's host metrics
#   docker run --rm -p 8082:8082 -v $PWD/my.properties:/etc/serve-metrics/config.properties serve-metrics
# Beside TorchServe: examples/torchserve-sidecar/.

# One Node major for both stages; it must be one that package.json's engines allow.
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
    && mv /pkg/serve-metrics-*.tgz /pkg/serve-metrics.tgz

# Run: a production install of that tarball (no dev dependencies, no sources), as a non-root user.
# test/e2e/package.test.ts installs and starts the tarball the same way.
FROM node:${NODE_MAJOR}-slim
ENV NODE_ENV=production
COPY --from=build /pkg/serve-metrics.tgz /tmp/serve-metrics.tgz
# No scripts: nothing at run time needs one, and the package's own `prepare` (a build) must not run.
# The default settings bind all interfaces: 127.0.0.1 (the service's default) is unreachable from
# outside a container. Mount your own config.properties over this file, or pass --ts-config.
RUN npm install --prefix /opt/serve-metrics --omit=dev --ignore-scripts --no-audit --no-fund \
        /tmp/serve-metrics.tgz \
    && rm /tmp/serve-metrics.tgz \
    && npm cache clean --force \
    && mkdir -p /etc/serve-metrics \
    && printf '%s\n' 'metrics_address=http://0.0.0.0:8082' > /etc/serve-metrics/config.properties
ENV PATH=/opt/serve-metrics/node_modules/.bin:$PATH \
    TS_CONFIG_FILE=/etc/serve-metrics/config.properties
# The image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# Relative paths in a config (logs, metrics_config) resolve here; the user can write to it.
WORKDIR /home/node
EXPOSE 8082
# serve-metrics handles SIGTERM itself (a graceful stop), so it can run as PID 1.
ENTRYPOINT ["serve-metrics"]
