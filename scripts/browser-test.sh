#!/usr/bin/env bash
# The page's end-to-end tests in headless Chromium (tests/browser/). Installs
# Debian's chromium and playwright-core (pinned in tests/browser/package-lock.json)
# when missing; expects target/debug/fugue to be built.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${CHROMIUM:-}" ] && ! [ -x /usr/bin/chromium ]; then
  echo "browser-test: installing chromium with apt-get" >&2
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium >/dev/null
fi

if ! [ -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi

node tests/browser/page.test.mjs
