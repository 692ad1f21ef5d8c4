#!/usr/bin/env bash
# Make the Dockerfile's Debian 12 base locally, without an image registry:
#   deploy/debian-base.sh TAG
# debootstrap (minbase) from the mirror this machine's apt is configured with (never a host name
# written here), then `docker import` as TAG. Pass TAG to the build as --build-arg BASE=TAG.
set -euo pipefail
tag=${1:?usage: deploy/debian-base.sh TAG}
mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 2>/dev/null \
         | grep -v -- '-security' | head -n1)
if [ -z "$mirror" ]; then
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v -- '-security' | head -n1)
fi
[ -n "$mirror" ] || { echo "no Debian mirror found in this machine's apt sources" >&2; exit 1; }
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 || { cat "$dir.log" >&2; exit 1; }
rm -f "$dir.log"
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
tar -C "$dir" -c . | docker import --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "$tag"
