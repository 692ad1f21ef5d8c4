#!/usr/bin/env bash
# Builds a small busybox image with `docker import`, for machines that cannot pull from a registry.
#   tools/busybox-image.sh [NAME]     (default NAME: busybox:latest; skipped if NAME is already this build)
#
# It uses Debian's dynamic `busybox` (downloaded with apt-get, not installed), its shared libraries,
# a relative symlink per applet and PATH=/bin. Not busybox-static: that build runs every applet
# through /proc/self/exe, so each `cat` in the container would have the command name "exe" and a
# `comm:cat` selector would never match.
set -euo pipefail
NAME=${1:-busybox:latest}
VERSION=dynamic-busybox-2   # the image's ig.busybox label; a different one is rebuilt

if [ "$(docker image inspect -f '{{index .Config.Labels "ig.busybox"}}' "$NAME" 2>/dev/null)" = "$VERSION" ]; then
  echo "$NAME is already built"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download busybox >/dev/null 2>&1; then
  apt-get update -qq
  apt-get download busybox >/dev/null
fi
dpkg-deb -x busybox_*.deb pkg
root=$work/rootfs
mkdir -p "$root/bin" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/etc"
cp pkg/bin/busybox "$root/bin/busybox"
for lib in $(ldd pkg/bin/busybox | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp "$(readlink -f "$lib")" "$root$lib"
done
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
tar -C "$root" -cf rootfs.tar .
docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' --change "LABEL ig.busybox=$VERSION" \
  rootfs.tar "$NAME" >/dev/null
echo "built $NAME"
