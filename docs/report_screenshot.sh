#!/usr/bin/env bash
# Look at a run's report.html the way a user's browser shows it, without a display and offline.
#
#   docs/report_screenshot.sh RUN_DIR [OUT.png] [HEIGHT]
#
# Rewrites RUN_DIR/report.html (`crossfuse report RUN_DIR`), then renders it with headless Chromium
# into OUT.png (default RUN_DIR/report.png; HEIGHT pixels tall, default 2000, 1280 wide). Every
# network feature of Chromium is switched off: the page must be complete on its own (its pictures
# are data URIs, its curves inline SVG). Open the PNG and look at it.
#
# Needs Chromium: on Debian/Ubuntu `apt-get update && apt-get install -y chromium`
# (or set CHROMIUM=/path/to/chrome). tests/test_report_html.py runs the same check when
# /usr/bin/chromium exists (`python -m pytest tests/test_report_html.py -m slow`).
set -euo pipefail

run_dir=${1:?usage: docs/report_screenshot.sh RUN_DIR [OUT.png] [HEIGHT]}
out=${2:-$run_dir/report.png}
height=${3:-2000}
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [ -z "$browser" ]; then
    echo "no Chromium found: apt-get install -y chromium, or set CHROMIUM=/path/to/chrome" >&2
    exit 2
fi

crossfuse report "$run_dir"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
page="file://$(cd "$run_dir" && pwd)/report.html"
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" --screenshot="$out" \
    --window-size=1280,"$height" "$page" 2>/dev/null
echo "wrote $out (from $page)"
