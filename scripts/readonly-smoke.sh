#!/usr/bin/env bash
# Serves uploads from a read-only root filesystem: starts aiouploader in a mount
# namespace where / and /dev/shm are read-only (as the Dockerfile runs it), uploads
# and downloads through it against rclone's S3 server, and compares the bytes.
# Needs root (unshare -m) and the virtualenv that scripts/test.sh makes.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$PWD/.venv"
work=$(mktemp -d /dev/shm/aiouploader-ro.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "readonly-smoke: $1 did not answer" >&2; return 1
}

export AWS_ACCESS_KEY_ID=smoke AWS_SECRET_ACCESS_KEY=smoke-secret
s3_port=$(free_port)
mkdir -p "$work/s3/incoming"
"$venv/bin/rclone" serve s3 --config /dev/null --addr "127.0.0.1:$s3_port" \
  --auth-key "$AWS_ACCESS_KEY_ID,$AWS_SECRET_ACCESS_KEY" "$work/s3" >"$work/rclone.log" 2>&1 &
pids+=($!)

port=$(free_port)
cat >"$work/config.toml" <<TOML
[server]
port = $port

[s3]
endpoint_url = "http://127.0.0.1:$s3_port"
part_size = "5MiB"

[[routes]]
path = "/uploads"
bucket = "incoming"
plugins = ["size_limit", "checksum", "virus_scan"]
TOML
head -c $((23 * 1024 * 1024 + 7)) /dev/urandom >"$work/body.bin"

unshare -m sh -c '
  mount --make-rprivate / &&
  mount -o remount,bind,ro / &&
  mount -o remount,bind,ro /dev/shm &&
  if touch /tmp/.aiouploader-probe 2>/dev/null; then echo "root is writable" >&2; exit 1; fi &&
  exec env PYTHONDONTWRITEBYTECODE=1 "$0" serve --config "$1"
' "$venv/bin/aiouploader" "$work/config.toml" >"$work/server.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$port/healthz"

url="http://127.0.0.1:$port/uploads/smoke/body.bin"
curl -fsS -T "$work/body.bin" "$url" >/dev/null
curl -fsS "$url" | cmp - "$work/body.bin"
curl -fsS -H 'Range: bytes=1000-1999' "$url" | cmp - <(dd if="$work/body.bin" bs=1000 skip=1 count=1 status=none)
printf 'small' | curl -fsS -T - "http://127.0.0.1:$port/uploads/smoke/chunked.txt" >/dev/null
[ "$(curl -fsS "http://127.0.0.1:$port/uploads/smoke/chunked.txt")" = small ]
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null
metrics=$(curl -fsS "http://127.0.0.1:$port/metrics")  # not piped into grep -q, which stops reading at the match
grep -q 'aiouploader_uploads_total{outcome="created",route="/uploads"} 2.0' <<<"$metrics"
if grep -q Traceback "$work/server.log"; then cat "$work/server.log" >&2; exit 1; fi
echo "readonly-smoke: uploads and downloads work with a read-only root filesystem"
