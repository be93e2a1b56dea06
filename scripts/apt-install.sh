#!/usr/bin/env bash
# Installs the Debian packages given as arguments (none: nothing to do), through sudo unless run as root.
set -euo pipefail
[ $# -gt 0 ] || exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
