#!/usr/bin/env bash
# Three replicas of `aiouploader serve` behind Debian's HAProxy (round-robin, then the configuration
# docs/operations.md recommends), restarted one after the other while tus-js-client uploads resumably through
# it. Installs HAProxy; fails unless the test passes, and prints its figures. Run ./scripts/test.sh first
# (.venv, tests/tus-js/node_modules).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || scripts/apt-install.sh haproxy

AIOUPLOADER_REPLICAS_SMOKE=1 .venv/bin/python -m pytest -q -s tests/test_replicas_haproxy.py
