#!/usr/bin/env bash
# Installs the Debian 12 packages greeks needs to build, test and benchmark.
# Idempotent: packages already present are skipped, and apt is not touched at all
# when nothing is missing. Runs apt-get directly as root, through sudo otherwise.
# With --node-example (make test's suites run the example), also Node.js and
# the example's pinned packages (examples/node, npm ci), fetched only when
# they are missing or older than its package-lock.json. Without it nothing
# reaches for the npm registry: `make run` and `make build` failed on a host
# without it, over an optional example (found in review).
set -euo pipefail

node_example=0
for arg in "$@"; do
  case "$arg" in
    --node-example) node_example=1 ;;
    *) echo "install-deps: unknown argument '$arg' (the one argument is --node-example)" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential cmake pkg-config   # toolchain
  libsleef-dev                       # vector math (kernels)
  libhwloc-dev                       # topology and thread binding (engine)
  libcmocka-dev                      # unit tests
  libbenchmark-dev                   # Google Benchmark (bench/)
  libgrpc-dev libprotobuf-c-dev      # gRPC C core and protobuf-c (greeksd, greeks call)
  protobuf-c-compiler grpc-proto     # protoc-c; grpc/health/v1/health.proto
  protobuf-compiler protobuf-compiler-grpc  # protoc + grpc_python_plugin (test stubs)
  python3-grpcio python3-protobuf    # the independent client of the integration tests
  openssl                            # test certificates for the TLS tests
  libssl-dev                         # greeksd checks its TLS certificate and key at start (startup.c)
  python3-h2                         # raw HTTP/2 frames in the abuse test (tests/grpc/test_abuse.py)
  gdb                                # make soak reads greeksd's heap in use (malloc_stats) through it
  libquantlib0-dev                   # QuantLib, the iv/quantlib benchmark case (optional in CMake)
  python3                            # bench/summarize.py, bench/gate, tests/test_gate.py
  clang libclang-rt-14-dev           # libFuzzer and its sanitizers (fuzz/, make fuzz)
  libsqlite3-dev zlib1g-dev          # the embedded event store (engine/store) and its row checksums
  libpq-dev                          # the PostgreSQL event-store adapter
  postgresql-15                      # the real server the store contract and crash tests start
  sqlite3                            # the runbook's online backup of a book store (docs/operations.md)
  libcurl4-openssl-dev               # the OTLP/HTTP span exporter (engine/telemetry, adr/0032)
  libmicrohttpd-dev                  # greeksd's HTTP listener: /metrics, /healthz, /readyz (adr/0031)
  libyaml-dev                        # greeksd's YAML configuration files (--config; api/server/config_file.c, adr/0035)
  prometheus                         # promtool (rules, metrics lint) and the server test_metrics scrapes with
  python3-yaml                       # tests/test_k8s_manifests.py parses deploy/k8s/*.yaml
  git                                # make mutation builds each mutant in a git worktree (scripts/mutation/run)
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
# Node.js for examples/node (docs/api.md, "Several instances"; tests/grpc/test_node_example.py):
# Debian's nodejs and npm, unless a node and an npm are already on the PATH
# (another distribution of Node.js, e.g. one that bundles npm, is kept).
if [ "$node_example" -eq 1 ]; then
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-deps: missing packages (${missing[*]}) and neither root nor sudo is available" >&2
    exit 1
  fi

  echo "install-deps: installing ${missing[*]}"
  # through env: sudo resets the environment, so an exported
  # DEBIAN_FRONTEND never reached apt-get run by a non-root user, who could
  # then get debconf prompts (found in review)
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The example's @grpc/grpc-js and @grpc/proto-loader, as pinned in its
# package-lock.json, from the npm registry: again only when node_modules is
# missing or older than the lock file, so repeated runs stay off the network.
node_dir="$(cd "$(dirname "$0")/.." && pwd)/examples/node"
if [ "$node_example" -eq 1 ] &&
   { [ ! -d "$node_dir/node_modules" ] || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules" ]; }; then
  echo "install-deps: npm ci in examples/node"
  (cd "$node_dir" && npm ci --no-audit --no-fund)
  touch "$node_dir/node_modules"
fi
