#!/usr/bin/env bash
# Runs the whole flowscope test suite: formatting, lints, the dependency arrows of the
# workspace layout, and every test of every crate. This is the README's test command and
# what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# A CI run builds from a clean clone once: incremental caches would only take disk space
# (as much again as the build itself).
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

echo "== dashboard bundle"
scripts/build-dashboard.sh --check

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked "$@"
