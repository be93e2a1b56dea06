#!/usr/bin/env bash
# Installs everything the test suite and the benchmark need (Debian packages, a virtualenv), then runs
# the linters, the type checker and the tests. Extra arguments go to pytest.
# The tests run in two pytest-xdist workers, a test file at a time each: they mostly wait on servers (S3,
# clamd, node, the server's processes), and each worker starts its own. `-n 0` runs them in one process.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/clamd ] || missing+=(clamav-daemon)
command -v age >/dev/null || missing+=(age)
command -v curl >/dev/null || missing+=(curl)
command -v npm >/dev/null || missing+=(nodejs npm)
scripts/apt-install.sh ${missing[@]+"${missing[@]}"}

[ -x .venv/bin/python ] || python3 -m venv .venv
# compat: a path in a .pth file, which mypy follows (it cannot follow setuptools' import hooks), so that
# mypy run inside an example plugin's directory finds aiouploader as it would an installed one.
.venv/bin/python -m pip install -q --disable-pip-version-check --config-settings editable_mode=compat \
  -e '.[test,browser]' -e plugins/aiouploader-content-type-guard -e plugins/aiouploader-webhook -r bench/requirements.txt
[ tests/tus-js/node_modules/.package-lock.json -nt tests/tus-js/package-lock.json ] ||
  npm ci --prefix tests/tus-js --no-audit --no-fund --loglevel=error
[ tests/js/node_modules/.package-lock.json -nt tests/js/package-lock.json ] ||
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -n 2 --dist loadfile "$@"
