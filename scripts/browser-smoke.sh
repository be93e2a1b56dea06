#!/usr/bin/env bash
# The browser example (examples/browser) in Debian's headless Chromium, driven by selenium: Uppy's Dashboard
# uploads a file resumably (tus) to a route of a proxy on another origin. Installs Chromium, chromedriver and
# the example's npm packages; fails unless the test passes. Run ./scripts/test.sh first (.venv, selenium).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v npm >/dev/null || missing+=(nodejs npm)
scripts/apt-install.sh ${missing[@]+"${missing[@]}"}

[ examples/browser/node_modules/.package-lock.json -nt examples/browser/package-lock.json ] ||
  npm ci --prefix examples/browser --no-audit --no-fund --loglevel=error
# scripts/test.sh installs selenium (the browser extra); an older .venv may lack it.
.venv/bin/python -c 'import selenium' 2>/dev/null ||
  .venv/bin/python -m pip install -q --disable-pip-version-check --config-settings editable_mode=compat -e '.[browser]'
AIOUPLOADER_BROWSER_SMOKE=1 .venv/bin/python -m pytest -q tests/test_browser_example.py
