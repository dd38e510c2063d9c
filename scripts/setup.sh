#!/usr/bin/env bash
# Installs what building and testing flowscope needs, idempotently: quick when everything
# is already present. Safe to run without a terminal (CI).
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# jemalloc (the binary's allocator) is built from source with make.
command -v make >/dev/null 2>&1 || need_apt+=(make)
# librdkafka is built from its vendored sources with cmake, with TLS from OpenSSL.
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
pkg-config --exists openssl 2>/dev/null || need_apt+=(libssl-dev)
# The dashboard's browser test (cluster/tests/dashboard_browser.rs) drives Debian's
# Chromium with playwright-core from node.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "setup: please install: ${need_apt[*]}" >&2
    exit 1
  fi
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${need_apt[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

# Tansu, the Kafka-protocol broker that the Kafka tests and demos start, with its in-memory
# storage engine (the `dynostore` feature). Building it takes a while (about 40 minutes on
# two cores), so it is installed once; a binary without the memory engine is replaced.
TANSU_VERSION=0.6.0
tansu_bin="$(command -v tansu 2>/dev/null || true)"
[ -z "$tansu_bin" ] && [ -x "$HOME/.cargo/bin/tansu" ] && tansu_bin="$HOME/.cargo/bin/tansu"
tansu_ok=false
if [ -n "$tansu_bin" ]; then
  # A broker without the memory engine refuses it at once; a good one keeps running.
  port=$(( 20000 + RANDOM % 20000 ))
  probe=$(timeout 2 "$tansu_bin" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ 2>&1 || true)
  if ! grep -q FeatureNotEnabled <<<"$probe"; then
    tansu_ok=true
  fi
fi
if [ "$tansu_ok" != true ]; then
  echo "setup: installing tansu $TANSU_VERSION with its memory storage (cargo install; takes a while)"
  cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore --force
fi

# The dashboard's node packages (esbuild, uPlot, playwright-core for the browser test), as
# pinned by its lock file; reinstalled when the lock file is newer than the last install.
# Playwright's own browsers are not downloaded: the test uses Debian's /usr/bin/chromium.
dashboard="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/cluster/dashboard"
stamp="$dashboard/node_modules/.setup-stamp"
if [ ! -f "$stamp" ] || [ "$dashboard/package-lock.json" -nt "$stamp" ]; then
  echo "setup: installing the dashboard's node packages (npm ci)"
  CI=true PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
    npm ci --prefix "$dashboard" --no-audit --no-fund </dev/null >/dev/null
  touch "$stamp"
fi
