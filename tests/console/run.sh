#!/usr/bin/env bash
# The console's browser tests (console.test.mjs): Playwright (playwright-core, pinned by
# package-lock.json; it never downloads a browser) driving Debian's Chromium, headless, against a
# real `kefu up` that the test starts. Installs what is missing: Chromium and a Chinese font from
# Debian, playwright-core from npm. KEFU_BIN names the kefu to test (default target/debug/kefu,
# which `cargo nextest run` builds; built here if absent). Screenshots: target/console-screenshots.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)

missing=()
command -v chromium >/dev/null || missing+=(chromium)
# Without a CJK font the console's Chinese renders as boxes in the screenshots.
fc-list 2>/dev/null | grep -qiE 'wenquanyi|noto sans cjk' || missing+=(fonts-wqy-zenhei)
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
chromium --version 2>/dev/null | head -n 1

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund --loglevel=error

export KEFU_BIN=${KEFU_BIN:-$root/target/debug/kefu}
if [ ! -x "$KEFU_BIN" ]; then (cd "$root" && cargo build --bin kefu); fi
node --test --test-concurrency=1 console.test.mjs
