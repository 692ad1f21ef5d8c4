#!/bin/sh
# The node agent's entrypoint: kernel headers for bcc, the host's cgroup namespace, then `ig "$@"`.
set -eu
kv=$(uname -r)
kdir=/lib/modules/$kv
host=/host/lib/modules/$kv

# A link of the node's /lib/modules/$kv, seen through the read-only mounts under /host.
node_dir() {
  p=$host/$1
  if [ -L "$p" ]; then
    t=$(readlink "$p")
    case $t in /*) p=/host$t ;; *) p=$host/$t ;; esac
  fi
  [ -e "$p/include/linux/kconfig.h" ] || [ -e "$p/include/generated/autoconf.h" ] || return 1
  echo "$p"
}

# bcc compiles against $kdir/build and $kdir/source. The node's headers when it has them
# (mounted from /lib/modules and /usr/src), else the Debian headers shipped in the image: ig's
# programs read only tracepoint arguments and helpers, never kernel structs.
mkdir -p "$kdir"
if build=$(node_dir build); then
  ln -sfn "$build" "$kdir/build"
  if source=$(node_dir source); then ln -sfn "$source" "$kdir/source"; fi
  echo "ig-entrypoint: kernel $kv: the node's headers ($build)"
else
  arch=$(dpkg --print-architecture)
  build=$(ls -d /usr/src/linux-headers-*-"$arch" | sort -V | tail -n1)
  ln -sfn "$build" "$kdir/build"
  ln -sfn "${build%-"$arch"}-common" "$kdir/source"
  echo "ig-entrypoint: kernel $kv: no headers on the node, using the image's ($build)"
fi

# cgroup paths in the runtimes' state are the host's; a pod has a cgroup namespace of its own.
# With hostPID, /proc/1 is the node's init: join its cgroup namespace (CAP_SYS_ADMIN).
host_cgroupns=$(readlink /proc/1/ns/cgroup 2>/dev/null || true)
if [ -z "$host_cgroupns" ]; then
  echo "ig-entrypoint: cannot read /proc/1/ns/cgroup (no hostPID or CAP_SYS_PTRACE?): staying in this cgroup namespace"
elif [ "$host_cgroupns" != "$(readlink /proc/self/ns/cgroup)" ]; then
  exec nsenter --cgroup=/proc/1/ns/cgroup -- ig "$@"
fi
exec ig "$@"
