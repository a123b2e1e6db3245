# rolesanywhere-credentiald container image.
#
#   docker build -t rolesanywhere-credentiald .
#   docker run --rm -v /etc/ra:/etc/ra:ro rolesanywhere-credentiald serve --config /etc/ra/config.yaml
#
# No certificate, key, password or token is baked in: mount them at run time
# (see config/kubernetes-pod.yaml). The daemon listens on 127.0.0.1:9911 by
# default, which is right for a pod sidecar (containers of a pod share the
# network namespace). Publishing the port from a standalone container needs
# --listen 0.0.0.0:9911 --allow-non-loopback, which exposes credentials to
# whoever can reach the port: prefer a sidecar.
#
# TPM 2.0 keys are signed by the system openssl with its tpm2 provider, which
# this image does not include. For them, build FROM this image, install
# openssl and tpm2-openssl as root, and run with --device /dev/tpmrm0 and the
# device's group (docs/keys.md: "Keys in a TPM 2.0").
#
# PKCS#11 keys (pkcs11: URIs) need the native module pkcs11js, which the bundle
# leaves out (scripts/bundle.js: the one external) and finds in /app/node_modules,
# and a PKCS#11 module. For them, build FROM this image and, as root:
# apt-get install python3 make g++ p11-kit-modules plus the token's module
# (e.g. opensc-pkcs11), `cd /app && npm install --no-save pkcs11js@2`, then purge
# the compiler (docs/keys.md: "Keys on a PKCS#11 token").

# ---- build: compile TypeScript, bundle (scripts/bundle.js) ----
FROM node:24-trixie-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/bundle.js scripts/check-node.cjs ./scripts/
COPY src ./src
RUN npm run build

# ---- runtime: the bundle and config/ only ----
# dist/bundle/ holds the CLI with every production dependency in one file (and the
# PKCS#11 worker): no node_modules, no npm install in this stage.
FROM node:24-trixie-slim
# RUNTIME_DIRECTORY sets the default token file (used unless --token-file,
# ROLESANYWHERE_TOKEN_FILE or tokenFile set one) to /var/run/rolesanywhere/token:
# a directory to share with the application, e.g. an emptyDir in Kubernetes.
# It is root-owned 1777 like /tmp (and like `--tmpfs` and a memory emptyDir):
# the default user and an arbitrary uid (OpenShift, --user 1000680000:0) can
# both create their token file there.
ENV NODE_ENV=production \
    RUNTIME_DIRECTORY=/var/run/rolesanywhere
WORKDIR /app
RUN mkdir -p /var/run/rolesanywhere && chmod 1777 /var/run/rolesanywhere
COPY --from=build /src/dist/bundle ./dist/bundle
COPY config ./config
USER node:node
EXPOSE 9911
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:9911/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# V8 settings: package.json "nodeFlags" (why: docs/benchmarks.md, "V8 settings").
ENTRYPOINT ["node", "--max-semi-space-size=2", "/app/dist/bundle/cli.js"]
CMD ["serve"]
