#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine, as root: system packages, kernel headers
# fallback, tracefs, the virtual environment with every distribution of the workspace.
# Usage: tools/setup.sh [system|venv|all]   (make calls it; each step is skipped when done)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${IG_VENV:-$ROOT/.venv}
step=${1:-all}

# bcc from Debian (never PyPI's unrelated "bcc"); the rest is what the tests drive for real.
APT_PACKAGES=(
  python3 python3-venv python3-dev python3-bpfcc
  docker.io runc
  prometheus bpftrace dnsmasq-base bind9-dnsutils
  iproute2 util-linux procps psmisc gcc make curl
  debootstrap   # the container image's Debian base, made locally (deploy/debian-base.sh)
  systemd       # systemd-analyze checks deploy/ig.service (a system without systemd as init only gets the files)
)

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "setup must run as root (it installs packages and loads eBPF programs)" >&2
    exit 1
  fi
}

install_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # kubectl (client only) for `kubectl gadget`; Debian ships it as kubernetes-client
  command -v kubectl >/dev/null || missing+=(kubernetes-client)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# bcc compiles against /lib/modules/$(uname -r)/{build,source}. A kernel without a headers
# package (custom or cloud kernels) gets Debian's linux-headers linked there: ig's programs read
# only tracepoint arguments and helpers, never kernel structs, so the version difference is harmless.
kernel_headers() {
  local kdir=/lib/modules/$(uname -r)
  [ -e "$kdir/build/include/linux/kconfig.h" ] || [ -e "$kdir/source/include/linux/kconfig.h" ] && return 0
  local pkg="linux-headers-$(uname -r)"
  if apt-cache show "$pkg" >/dev/null 2>&1; then
    log "installing $pkg"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
    return 0
  fi
  local arch; arch=$(dpkg --print-architecture)
  dpkg-query -W -f='${Status}' "linux-headers-$arch" 2>/dev/null | grep -q "install ok installed" || {
    log "no headers package for kernel $(uname -r); installing linux-headers-$arch as the fallback"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "linux-headers-$arch" >/dev/null
  }
  local build; build=$(ls -d /usr/src/linux-headers-*-"$arch" | sort -V | tail -n1)
  local common=${build%-"$arch"}-common
  log "linking $kdir/build -> $build (kernel headers fallback)"
  mkdir -p "$kdir"
  ln -sfn "$build" "$kdir/build"
  [ -d "$common" ] && ln -sfn "$common" "$kdir/source"
  return 0
}

# Tracepoints are attached through tracefs; minimal VMs and containers often do not mount it.
tracefs() {
  if [ ! -e /sys/kernel/tracing/events ]; then
    mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
  fi
  if [ ! -e /sys/kernel/debug/tracing ] && [ -d /sys/kernel/debug ]; then
    mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
  fi
}

venv() {
  local py=/usr/bin/python3   # Debian's interpreter: python3-bpfcc is built for it
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$py" -m venv "$VENV"
  fi
  # Let the venv see Debian's bcc module, and only that (not all of dist-packages).
  local site; site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  ln -sfn /usr/lib/python3/dist-packages/bcc "$site/bcc"
  local stamp="$VENV/.ig-installed" sum
  sum=$({ cat pyproject.toml constraints.txt plugins/*/pyproject.toml tests/plugins/*/pyproject.toml 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
    log "installing ig and its plugins into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
    # constraints.txt pins every dependency to the versions CI runs with (README, "Checks and pinned dependencies").
    local args=(-c "$ROOT/constraints.txt" -e "$ROOT[test,lint]")
    for d in plugins/*/ tests/plugins/*/; do [ -f "$d/pyproject.toml" ] && args+=(-e "$ROOT/$d"); done
    # setuptools warns at every editable install of a flat layout that a folder named like the
    # package in the working directory takes precedence over it: here that folder is the package
    # being installed, so the 10-line warning (once per distribution) says nothing. pip relays a
    # build backend's warnings even with -q; this filter reaches the backend's own process.
    PYTHONWARNINGS="ignore:Editable installation:UserWarning" \
      "$VENV/bin/pip" install -q --disable-pip-version-check "${args[@]}"
    echo "$sum" >"$stamp"
  fi
}

need_root
case "$step" in
  system) install_packages; kernel_headers; tracefs ;;
  venv) venv ;;
  all) install_packages; kernel_headers; tracefs; venv ;;
  *) echo "usage: $0 [system|venv|all]" >&2; exit 2 ;;
esac
