#!/usr/bin/env bash
# Puts this clone's ig on PATH, takes it off again, and installs the systemd unit (README, "Install").
# Usage: tools/install.sh links|unlink|service   (make install, uninstall, install-service call it)
# The places are variables so that tests install into a temporary directory:
#   BINDIR (/usr/local/bin), UNITDIR (/etc/systemd/system), CONFDIR (/etc/ig), IG_VENV (.venv)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${IG_VENV:-$ROOT/.venv}
case $VENV in /*) ;; *) VENV=$ROOT/$VENV ;; esac   # a link must not depend on the directory it is in
BINDIR=${BINDIR:-/usr/local/bin}
UNITDIR=${UNITDIR:-/etc/systemd/system}
CONFDIR=${CONFDIR:-/etc/ig}
PROGRAMS=(ig kubectl-gadget)   # kubectl finds kubectl-gadget on PATH as `kubectl gadget`

log() { printf '[install] %s\n' "$*"; }
die() { printf 'install: %s\n' "$*" >&2; exit 1; }

# Ours: a symbolic link to this clone's venv. Anything else at that name belongs to someone else.
is_ours() { [ -L "$1" ] && [ "$(readlink "$1")" = "$VENV/bin/$(basename "$1")" ]; }

links() {
  local p link
  for p in "${PROGRAMS[@]}"; do   # every name is checked before any is linked: all or nothing
    [ -x "$VENV/bin/$p" ] || die "$VENV/bin/$p is missing: run tools/setup.sh venv first"
    link=$BINDIR/$p
    if [ -e "$link" ] || [ -L "$link" ]; then
      is_ours "$link" || die "$link exists and is not a link to $VENV/bin/$p: remove it, then run make install again"
    fi
  done
  mkdir -p "$BINDIR"
  for p in "${PROGRAMS[@]}"; do
    link=$BINDIR/$p
    if is_ours "$link"; then
      log "$link -> $VENV/bin/$p (already)"
    else
      ln -s "$VENV/bin/$p" "$link"
      log "$link -> $VENV/bin/$p"
    fi
  done
}

unlink_all() {
  local p link
  for p in "${PROGRAMS[@]}"; do
    link=$BINDIR/$p
    if is_ours "$link"; then
      rm -f "$link"
      log "removed $link"
    elif [ -e "$link" ] || [ -L "$link" ]; then
      log "left $link: it is not a link to $VENV/bin/$p"
    fi
  done
}

# The paths go into the unit's command line, where systemd would read spaces, quotes, `%` and `$`.
plain_path() {
  [[ $2 =~ ^/[A-Za-z0-9._/+-]*$ ]] || die "$1=$2: use an absolute path of letters, digits and ._/+-"
}

service() {
  plain_path BINDIR "$BINDIR"; plain_path UNITDIR "$UNITDIR"; plain_path CONFDIR "$CONFDIR"
  is_ours "$BINDIR/ig" || die "$BINDIR/ig is not this clone's: run make install first"
  local config=$CONFDIR/config.yaml
  mkdir -p "$UNITDIR"
  sed -e "s|/usr/local/bin/|$BINDIR/|g" -e "s|/etc/ig/config.yaml|$config|g" deploy/ig.service >"$UNITDIR/ig.service.tmp"
  mv "$UNITDIR/ig.service.tmp" "$UNITDIR/ig.service"
  log "wrote $UNITDIR/ig.service"
  if [ -e "$config" ] || [ -L "$config" ]; then
    log "kept $config (yours)"
  else
    mkdir -p "$CONFDIR"
    install -m 0644 igcore/data/default.yaml "$config"   # the built-in config, as a start
    log "wrote $config (the built-in config)"
  fi
  local checked
  checked=$("$BINDIR/ig" prometheus --config "@$config" --check 2>&1) || {
    printf '%s\n' "$checked" >&2
    die "$config does not pass ig prometheus --check: the service would not start"
  }
  # sd_booted(): systemd runs as init only where /run/systemd/system exists.
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    log "systemctl daemon-reload done; start it with: systemctl enable --now ig"
  else
    log "systemd is not running on this machine: no daemon-reload (the unit is in place for a system that boots with systemd)"
  fi
}

case "${1:-}" in
  links) links ;;
  unlink) unlink_all ;;
  service) service ;;
  *) echo "usage: $0 links|unlink|service" >&2; exit 2 ;;
esac
