#!/usr/bin/env bash
# The dashboard on the demo's 30 days of data, in headless Chromium at 1400 px (a desktop) and
# 390 px (a phone): run by hand, look at the PNGs. Not part of CI (it needs Chromium:
# apt-get install -y chromium).
#
#   benches/screenshots.sh [OUT_DIR]        # default target/screenshots
#   SMSFLOW_BIN=target/debug/smsflow benches/screenshots.sh   # skip the release build
set -euo pipefail
cd "$(dirname "$0")/.."
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
    echo "screenshots: no Chromium found; install it with: apt-get install -y chromium" >&2
    exit 1
fi
out=${1:-target/screenshots}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -z "${SMSFLOW_BIN:-}" ]; then
    cargo build --release -q
    SMSFLOW_BIN=target/release/smsflow
fi
"$SMSFLOW_BIN" demo > "$out/demo.txt"
page=$(grep -o '/[^ ]*smsflow-demo-report.html' "$out/demo.txt" | head -1)
cp "$page" "$out/dashboard.html"
for width in 1400 390; do
    # Tall enough for the whole page; the PNG is cropped to the window.
    "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size="$width,7600" --screenshot="$out/dashboard-$width.png" \
        "file://$out/dashboard.html" 2>/dev/null
    echo "screenshots: $out/dashboard-$width.png"
done
