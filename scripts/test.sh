#!/usr/bin/env bash
# Runs the whole flowscope test suite: formatting, lints, the dependency arrows of the
# workspace layout, and every test of every crate. This is the README's test command and
# what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== dashboard bundle"
scripts/build-dashboard.sh --check

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked "$@"
