#!/usr/bin/env bash
# Runs the whole flowsight test suite: formatting, lints, the dependency arrows of the
# workspace layout, and every test of every crate. This is the README's test command and
# what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# A clean build of the suite takes about 2 GB; say so up front rather than leave a linker's
# "No space left on device" to explain it.
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
free_kb=$(df -Pk "$target_dir" | awk 'NR == 2 { print $4 }')
if [ -n "$free_kb" ] && [ "$free_kb" -lt $(( 3 * 1024 * 1024 )) ]; then
  echo "warning: only $(( free_kb / 1024 )) MB free for $target_dir; a clean build of the suite needs about 2 GB" >&2
fi

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
