#!/usr/bin/env bash
# Installs everything the test suite and the benchmark need (Debian packages, a virtualenv), then runs
# the linters, the type checker and the tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/clamd ] || missing+=(clamav-daemon)
command -v age >/dev/null || missing+=(age)
command -v curl >/dev/null || missing+=(curl)
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# compat: a path in a .pth file, which mypy follows (it cannot follow setuptools' import hooks), so that
# mypy run inside an example plugin's directory finds aiouploader as it would an installed one.
.venv/bin/python -m pip install -q --disable-pip-version-check --config-settings editable_mode=compat \
  -e '.[test]' -e plugins/aiouploader-content-type-guard -e plugins/aiouploader-webhook -r bench/requirements.txt
[ tests/tus-js/node_modules/.package-lock.json -nt tests/tus-js/package-lock.json ] ||
  npm ci --prefix tests/tus-js --no-audit --no-fund --loglevel=error
[ tests/js/node_modules/.package-lock.json -nt tests/js/package-lock.json ] ||
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
