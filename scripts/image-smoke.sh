#!/usr/bin/env bash
# Builds the image from the Dockerfile and runs it as a container runtime would.
# No registry is reachable, so a Debian bookworm base shaped like the official
# Python image (debootstrap, a venv at /usr/local, pip) stands in for
# python:3.12-slim through the BASE build argument; buildah builds on it. The
# image's ENTRYPOINT and CMD then run as the image's user from a read-only bind
# of its root, in a network namespace of their own next to rclone's S3 server,
# with only the config, an age identity and clamd's socket mounted. Checks
# /healthz, the Dockerfile's HEALTHCHECK, uploads and downloads through an
# encrypting, scanning route, a SIGTERM that drains, and that the process is not
# root; prints the image's size. Everything it makes lives in one temporary
# directory and a private mount namespace, and is removed on exit.
# Needs root and the virtualenv that scripts/test.sh makes; installs debootstrap
# and buildah when missing.
set -euo pipefail
[ -n "${IMAGE_SMOKE_PRIVATE_MOUNTS:-}" ] ||
  exec env IMAGE_SMOKE_PRIVATE_MOUNTS=1 unshare --mount --propagation private bash "$0" "$@"
cd "$(dirname "$0")/.."
venv="$PWD/.venv"
started=$SECONDS
say() { echo "image-smoke: $*"; }
fail() { echo "image-smoke: FAIL: $*" >&2; exit 1; }

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v buildah >/dev/null || missing+=(buildah)
command -v age-keygen >/dev/null || missing+=(age)
command -v curl >/dev/null || missing+=(curl)
[ -x /usr/sbin/clamd ] || missing+=(clamav-daemon)
scripts/apt-install.sh ${missing[@]+"${missing[@]}"}
[ -x "$venv/bin/rclone" ] || fail "$venv/bin/rclone is missing: run scripts/test.sh first"

# Debian's mirror as apt is configured to reach it.
mirror=$(apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' |
  awk '$2 == "bookworm" && $3 == "main" && !found { print $1; found = 1 }') || true
mirror=${DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}

work=$(mktemp -d "${TMPDIR:-/tmp}/aiouploader-image.XXXXXX")
pids=()
b() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver overlay "$@"; }
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -d "$work/storage" ]; then
    b rm --all >/dev/null 2>&1 || true
    b rmi --all --force >/dev/null 2>&1 || true
  fi
  findmnt -rno TARGET | grep "^$work/" | sort -r | xargs -r -d '\n' umount -l 2>/dev/null || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# 1. The base: Debian's python3 as /usr/local/bin/python with pip beside it.
base=localhost/aiouploader-base:bookworm
ctr=$(b from scratch)
rootfs=$(b mount "$ctr")
say "debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" \
  >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
chroot "$rootfs" /usr/bin/python3 -m venv --without-pip /usr/local
chroot "$rootfs" /usr/local/bin/python3 -m ensurepip --default-pip >/dev/null
ln -sf pip3 "$rootfs/usr/local/bin/pip"
rm -f "$rootfs"/usr/local/bin/[Aa]ctivate*
# This machine's CA bundle and pip settings, so that pip in the build reaches the index.
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
[ ! -f /etc/pip.conf ] || cp /etc/pip.conf "$rootfs/etc/pip.conf"
# What slim images leave out: apt's lists and downloads, manuals, translations.
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/man/* \
  "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/bootstrap.log
find "$rootfs/usr/share/doc" -type f ! -name copyright -delete
b config --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
  --cmd python3 "$ctr"
b commit -q --rm "$ctr" "$base" >/dev/null
say "base made ($((SECONDS - started))s)"

# 2. The image, from the Dockerfile as it is.
image=localhost/aiouploader:smoke
b bud -q --isolation chroot --format docker --build-arg "BASE=$base" -t "$image" . >"$work/build.log" 2>&1 ||
  { tail -30 "$work/build.log" >&2; fail "the Dockerfile does not build"; }
say "image built ($((SECONDS - started))s)"
b inspect --type image "$base" >"$work/base.json"
b inspect --type image "$image" >"$work/image.json"
# The image's config, and the HEALTHCHECK as the Dockerfile writes it, as bash arrays.
"$venv/bin/python" - "$work/image.json" "$work/base.json" Dockerfile >"$work/image.sh" <<'PY'
import json
import re
import shlex
import sys

image, base = (json.load(open(path)) for path in sys.argv[1:3])
config = image["Docker"]["config"]
text = re.sub(r"\\\n", " ", open(sys.argv[3]).read())
(line,) = (line.strip() for line in text.splitlines() if re.match(r"\s*HEALTHCHECK\s", line, re.I))
options, command = re.split(r"\s+CMD\s+", line, maxsplit=1)
exec_form = command.startswith("[")
healthcheck = json.loads(command) if exec_form else ["/bin/sh", "-c", command]
timeout = re.search(r"--timeout=(\d+)s", options)


def layers(manifest: str) -> int:
    return sum(layer["size"] for layer in json.loads(manifest)["layers"])


values = {
    "image_env": config.get("Env") or [],
    "entrypoint": config.get("Entrypoint") or [],
    "cmd": config.get("Cmd") or [],
    "healthcheck": healthcheck,
    "healthcheck_image": (config.get("Healthcheck") or {}).get("Test") or [],
    "healthcheck_dockerfile": ["CMD", *healthcheck] if exec_form else ["CMD-SHELL", command],
}
for name, value in values.items():
    print(f"{name}=({' '.join(shlex.quote(item) for item in value)})")
print(f"user={shlex.quote(config.get('User') or '0')}")
print(f"workdir={shlex.quote(config.get('WorkingDir') or '/')}")
print(f"healthcheck_timeout={int(timeout[1]) if timeout else 30}")
print(f"image_bytes={layers(image['Manifest'])} base_bytes={layers(base['Manifest'])}")
PY
# shellcheck source=/dev/null
. "$work/image.sh"
mib() { echo "$(($1 / 1048576)) MiB"; }
say "image size: $(mib "$image_bytes") uncompressed ($(mib "$base_bytes") base + $(mib $((image_bytes - base_bytes))) aiouploader)"
[ "${healthcheck_image[*]}" = "${healthcheck_dockerfile[*]}" ] ||
  fail "the image's HEALTHCHECK (${healthcheck_image[*]}) is not the Dockerfile's"
uid=${user%%:*} gid=${user#*:}
[ "$gid" != "$user" ] || gid=$uid
[[ "$uid" =~ ^[0-9]+$ && "$gid" =~ ^[0-9]+$ ]] || fail "USER $user is not numeric (runAsNonRoot needs a number)"
[ "$uid" != 0 ] || fail "the image runs as root"

ctr=$(b from -q "$image")
root=$(b mount "$ctr")
[ -d "$root/etc/aiouploader" ] || fail "the image has no /etc/aiouploader to mount the config on"
leftovers=$(find "$root" -xdev \( -path '*/bin/gcc*' -o -path '*/bin/cc' -o -name 'cc1*' -o -path "$root/src" \
  -o -path '*/.cache/pip' -o -name conftest.py -o -name 'test_conf_examples.py' \) -print -quit)
[ -z "$leftovers" ] || fail "the image carries a compiler, the build's sources, tests or pip's cache: $leftovers"
mkdir -p "$root/run/secrets" "$root/run/clamav"  # mount points, as a runtime makes them

# 3. What is mounted into it: the config, the age identity (the user's, 0400), clamd's socket.
mkdir -p "$work/config" "$work/secrets" "$work/clamav" "$work/s3/incoming"
age-keygen -o "$work/secrets/age-identity.txt" 2>/dev/null
recipient=$(age-keygen -y "$work/secrets/age-identity.txt")
chown "$uid:$gid" "$work/secrets/age-identity.txt"
chmod 0400 "$work/secrets/age-identity.txt"
cat >"$work/config/config.toml" <<TOML
[server]
port = 8080
shutdown_grace = 15

[s3]
endpoint_url = "http://127.0.0.1:9000"
part_size = "5MiB"

[[routes]]
path = "/uploads"
bucket = "incoming"
plugins = ["size_limit", "checksum", "virus_scan", "encryption"]

[plugins.virus_scan]
backend = "clamd"
clamd_address = "unix:///run/clamav/clamd.ctl"

[plugins.encryption]
recipients = ["$recipient"]
identity_file = "/run/secrets/age-identity.txt"
TOML
chmod -R a+rX "$work/config"

"$venv/bin/python" -c 'from aiouploader.eicar import EICAR; print(EICAR.hex())' >"$work/eicar.hex"
echo "Eicar-Test-Signature:0:*:$(cat "$work/eicar.hex")" >"$work/clamav/eicar.ndb"
cat >"$work/clamav/clamd.conf" <<CONF
Foreground yes
LocalSocket $work/clamav/clamd.ctl
LocalSocketMode 666
DatabaseDirectory $work/clamav
TemporaryDirectory $work/clamav
LogFile $work/clamav/clamd.log
Bytecode no
SelfCheck 0
CONF
/usr/sbin/clamd -c "$work/clamav/clamd.conf" >"$work/clamav/clamd.out" 2>&1 &
pids+=($!)
for _ in $(seq 300); do [ -S "$work/clamav/clamd.ctl" ] && break; sleep 0.1; done
[ -S "$work/clamav/clamd.ctl" ] || { cat "$work/clamav/clamd.out" >&2; fail "clamd did not start"; }

# 4. A network namespace with only a loopback, shared by the container and the S3 server.
unshare --net sh -c 'ip link set lo up && exec sleep 100000' &
netns=$!
pids+=("$netns")
in_ns=(nsenter --net="/proc/$netns/ns/net")  # an array, not a function: `&` then gives the command's pid
for _ in $(seq 50); do
  [ "$(readlink "/proc/$netns/ns/net")" != "$(readlink /proc/self/ns/net)" ] &&
    "${in_ns[@]}" ip -o link show lo | grep -q ',UP' && break
  sleep 0.1
done
export AWS_ACCESS_KEY_ID=smoke AWS_SECRET_ACCESS_KEY=smoke-secret
"${in_ns[@]}" "$venv/bin/rclone" serve s3 --config /dev/null --addr 127.0.0.1:9000 \
  --auth-key "$AWS_ACCESS_KEY_ID,$AWS_SECRET_ACCESS_KEY" "$work/s3" >"$work/rclone.log" 2>&1 &
pids+=($!)

container_env=("${image_env[@]}" "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY")
# The container: its own mount namespace, the image's root bound read-only with
# /proc, a small /dev and the three mounts under it; then ENTRYPOINT + CMD as USER.
"${in_ns[@]}" unshare --mount bash -c '
  set -euo pipefail
  root=$1 work=$2 user=$3; shift 3
  mount --make-rprivate /
  mount --bind "$root" "$root"
  mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
  mount -t tmpfs -o nosuid,noexec,mode=0755 tmpfs "$root/dev"
  for device in null zero full random urandom; do
    touch "$root/dev/$device" && mount --bind "/dev/$device" "$root/dev/$device"
  done
  for mount in config:/etc/aiouploader secrets:/run/secrets clamav:/run/clamav; do
    mount --bind "$work/${mount%%:*}" "$root${mount#*:}"
  done
  mount -o remount,bind,ro "$root/etc/aiouploader" && mount -o remount,bind,ro "$root/run/secrets"
  mount -o remount,bind,ro "$root"
  exec chroot --userspec="$user" "$root" /usr/bin/env -i -C "$1" "${@:2}"
' container "$root" "$work" "$uid:$gid" "$workdir" "${container_env[@]}" "${entrypoint[@]}" "${cmd[@]}" \
  >"$work/server.log" 2>&1 &
pid=$!
pids+=("$pid")
# Like `docker exec`: the container's namespaces, root, user and environment.
exec_in=(nsenter --target "$pid" --mount --net --root --wd --setuid "$uid" --setgid "$gid"
  /usr/bin/env -i "${container_env[@]}")
server_log() { sed 's/^/  server: /' "$work/server.log" >&2; }

for _ in $(seq 150); do
  "${in_ns[@]}" curl -fsS -o /dev/null http://127.0.0.1:8080/healthz 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { server_log; fail "the image did not start"; }
  sleep 0.1
done
"${in_ns[@]}" curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || { server_log; fail "/healthz did not answer"; }
say "/healthz answers ($((SECONDS - started))s)"

read -r _ ruid euid suid fsuid < <(grep '^Uid:' "/proc/$pid/status")
[ "$ruid $euid $suid $fsuid" = "$uid $uid $uid $uid" ] && [ "$uid" != 0 ] ||
  fail "the server runs with uids $ruid $euid $suid $fsuid, not the image's $uid"
grep -q aiouploader "/proc/$pid/cmdline" || fail "pid $pid is not the image's entrypoint"
probe=$("${exec_in[@]}" sh -c 'echo > /tmp/.probe' 2>&1) && fail "the container's root filesystem is writable"
grep -q 'Read-only file system' <<<"$probe" || fail "writing /tmp failed for another reason: $probe"
timeout "$healthcheck_timeout" "${exec_in[@]}" "${healthcheck[@]}" || { server_log; fail "the HEALTHCHECK fails"; }
say "runs as uid $uid, root filesystem read-only, HEALTHCHECK passes"

url=http://127.0.0.1:8080/uploads/smoke
head -c $((12 * 1024 * 1024 + 7)) /dev/urandom >"$work/body.bin"
"${in_ns[@]}" curl -fsS -T "$work/body.bin" "$url/body.bin" -o "$work/put.json" || { server_log; fail "PUT failed"; }
"${in_ns[@]}" curl -fsS "$url/body.bin" | cmp - "$work/body.bin" || fail "GET did not give back the uploaded bytes"
"${in_ns[@]}" curl -fsS -H 'Range: bytes=6000000-6000999' "$url/body.bin" |
  cmp - <(dd if="$work/body.bin" bs=1000 skip=6000 count=1 status=none) || fail "a Range GET did not decrypt"
stored="$work/s3/incoming/smoke/body.bin"
[ "$(head -c 21 "$stored")" = "age-encryption.org/v1" ] || fail "S3 does not hold an age file"
age -d -i "$work/secrets/age-identity.txt" "$stored" | cmp - "$work/body.bin" || fail "age -d does not give the bytes back"
code=$("${in_ns[@]}" curl -sS -o /dev/null -w '%{http_code}' -T "$work/eicar.hex" "$url/clean.txt")
[ "$code" = 201 ] || fail "a clean upload got $code"
code=$("$venv/bin/python" -c 'from aiouploader.eicar import EICAR; import sys; sys.stdout.buffer.write(EICAR)' |
  "${in_ns[@]}" curl -sS -o /dev/null -w '%{http_code}' -T - "$url/eicar.txt")
[ "$code" = 422 ] || { server_log; fail "EICAR through clamd's socket got $code, not 422"; }
say "PUT, GET, Range and age -d agree through the encrypting route; clamd's socket answers"
peak=$(awk '/^VmHWM:/ { print int($2 / 1024) }' "/proc/$pid/status")

# 5. SIGTERM while an upload is in flight: it completes, new ones get 503, exit 0.
head -c $((6 * 1024 * 1024)) /dev/urandom >"$work/slow.bin"
"${in_ns[@]}" curl -sS --limit-rate 1M -T "$work/slow.bin" -o /dev/null -w '%{http_code}' "$url/slow.bin" >"$work/slow.code" &
slow=$!
pids+=("$slow")
in_flight=no
for _ in $(seq 50); do
  metrics=$("${in_ns[@]}" curl -fsS http://127.0.0.1:8080/metrics)  # whole: grep -q would close the pipe early
  grep -q '^aiouploader_uploads_in_flight 1.0' <<<"$metrics" && in_flight=yes && break
  sleep 0.1
done
[ "$in_flight" = yes ] || fail "the slow upload never showed as in flight"
kill -TERM "$pid"
sleep 0.5
code=$("${in_ns[@]}" curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/readyz)
[ "$code" = 503 ] || fail "/readyz answered $code while draining"
code=$(printf late | "${in_ns[@]}" curl -sS -o /dev/null -w '%{http_code}' -T - "$url/late.txt")
[ "$code" = 503 ] || fail "a new upload got $code while draining"
wait "$slow" || true
[ "$(cat "$work/slow.code")" = 201 ] || { server_log; fail "the upload in flight got $(cat "$work/slow.code")"; }
age -d -i "$work/secrets/age-identity.txt" "$work/s3/incoming/smoke/slow.bin" | cmp - "$work/slow.bin" ||
  fail "the drained upload was not stored whole"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && { server_log; fail "the server did not exit after its uploads drained"; }
status=0
wait "$pid" || status=$?
running=()
for other in "${pids[@]}"; do [ "$other" = "$pid" ] || running+=("$other"); done
pids=("${running[@]}")
[ "$status" = 0 ] || { server_log; fail "the server exited with $status after SIGTERM"; }
grep -q Traceback "$work/server.log" && { server_log; fail "the server logged a traceback"; }
probe=$("${in_ns[@]}" chroot --userspec="$uid:$gid" "$root" /usr/bin/env -i "${image_env[@]}" "${healthcheck[@]}" 2>&1) &&
  fail "the HEALTHCHECK passes with no server"
grep -q 'Connection refused' <<<"$probe" || fail "the HEALTHCHECK failed for another reason: $probe"
say "SIGTERM drained: the upload in flight completed, new ones got 503, exit status 0"
say "passed in $((SECONDS - started))s; image $(mib "$image_bytes"), server peak RSS ${peak} MiB"
