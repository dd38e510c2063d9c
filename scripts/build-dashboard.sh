#!/usr/bin/env bash
# Builds the dashboard (cluster/dashboard/src) into cluster/src/http/assets/: dashboard.js
# and dashboard.css (bundled and minified by esbuild, uPlot included) and index.html.
# The built files are committed; the flowsight binary embeds them with include_str!, so
# run this after changing anything under cluster/dashboard/src and commit its output.
# With --check it builds into a temporary directory and fails if the committed files
# differ from what the sources give (the test suite runs that).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dashboard=cluster/dashboard
assets=cluster/src/http/assets
check=false
if [[ ${1:-} == --check ]]; then
    check=true
    committed=$assets
    assets=$(mktemp -d)
    trap 'rm -rf "$assets"' EXIT
fi

# Install the pinned packages when they are missing or the lock file changed since.
if [[ ! -d $dashboard/node_modules || $dashboard/package-lock.json -nt $dashboard/node_modules ]]; then
    npm ci --prefix "$dashboard" --no-audit --no-fund
    touch "$dashboard/node_modules"
fi

mkdir -p "$assets"
# uPlot's MIT notice is a plain comment that minifying drops: keep it as a banner.
uplot_version=$(node -p "require('./$dashboard/node_modules/uplot/package.json').version")
notice="/*! uPlot v$uplot_version, (c) Leon Sorokin, MIT License, https://github.com/leeoniya/uPlot */"
# main.js imports uPlot's CSS and style.css: esbuild writes them to dashboard.css beside
# dashboard.js.
"$dashboard/node_modules/.bin/esbuild" "$dashboard/src/main.js" \
    --bundle --minify --format=iife --target=es2020 --charset=utf8 \
    --banner:js="$notice" --banner:css="$notice" \
    --outfile="$assets/dashboard.js" --log-level=warning
cp "$dashboard/src/index.html" "$assets/index.html"

if $check; then
    if ! diff -q "$assets" "$committed" >/dev/null; then
        echo "the dashboard bundle in $committed is not what cluster/dashboard/src builds:" >&2
        diff -q "$assets" "$committed" >&2 || true
        echo "run scripts/build-dashboard.sh and commit its output" >&2
        exit 1
    fi
    echo "dashboard bundle up to date"
    exit 0
fi
for file in dashboard.js dashboard.css index.html; do
    printf '%-14s %7d bytes\n' "$file" "$(wc -c <"$assets/$file")"
done
