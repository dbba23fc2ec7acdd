#!/usr/bin/env bash
# The iptaudit OCI image, built with buildah from scratch (nothing is pulled): the stripped release binary and the
# files scripts/image-rootfs.sh copies from this Debian system (the libraries it dlopens, iptables-nft-save, their
# ldd closure). Tags localhost/iptaudit:VERSION and localhost/iptaudit:latest in the local containers-storage; an
# image of that tag built from the same binary (its sha256 is a label) is reused. Prints the image's size.
#   --save            also write dist/iptaudit-VERSION.oci.tar (an OCI archive, for `podman load` or `skopeo copy`)
#   IPTAUDIT_VERSION, IPTAUDIT_RELEASE_BIN  as scripts/release.sh
#   STORAGE_DRIVER, CONTAINERS_STORAGE_CONF  buildah's own: e.g. STORAGE_DRIVER=vfs where overlay cannot mount
# User: root (UID 0) with no capability but what the runtime grants: reading netfilter needs CAP_NET_ADMIN in the
# effective set, and runtimes (Kubernetes' capabilities.add, podman --cap-add) raise it there only for UID 0.
set -euo pipefail
cd "$(dirname "$0")/.."
save=0
case "${1:-}" in
  --save) save=1 ;;
  "") ;;
  *) echo "usage: $0 [--save]" >&2; exit 64 ;;
esac
version="${IPTAUDIT_VERSION:-$(git describe --tags --always 2>/dev/null || echo unknown)}"
export IPTAUDIT_VERSION="$version"
scripts/release.sh >&2
binary="dist/iptaudit-$version-linux-$(uname -m)"
checksum="$(cut -d' ' -f1 "$binary.sha256")"
image="localhost/iptaudit:$version"

built="$(buildah inspect --type image --format '{{index .OCIv1.Config.Labels "io.iptaudit.binary.sha256"}}' "$image" 2>/dev/null || true)"
if [[ "$built" != "$checksum" ]]; then
  work="$(mktemp -d)"
  container=""
  trap '[[ -z "$container" ]] || buildah rm "$container" >/dev/null 2>&1; rm -rf "$work"' EXIT
  scripts/image-rootfs.sh "$binary" "$work/rootfs" >/dev/null
  tar --numeric-owner --owner=0 --group=0 -C "$work/rootfs" -cf "$work/rootfs.tar" .
  container="$(buildah from scratch)"
  buildah add --quiet "$container" "$work/rootfs.tar" / >/dev/null
  buildah config \
    --entrypoint '["/usr/bin/iptaudit"]' --cmd '["--help"]' --user 0:0 --workingdir / \
    --env PATH=/usr/sbin:/usr/bin \
    --label org.opencontainers.image.title=iptaudit \
    --label org.opencontainers.image.description="Audits a pod's Istio traffic-capture rules (iptables/nf_tables)" \
    --label org.opencontainers.image.version="$version" \
    --label org.opencontainers.image.revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    --label org.opencontainers.image.created="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --label org.opencontainers.image.licenses=GPL-2.0-or-later \
    --label org.opencontainers.image.base.name=scratch \
    --label io.iptaudit.binary.sha256="$checksum" \
    "$container"
  buildah commit --quiet --format oci --rm "$container" "$image" >/dev/null
  container=""
fi
buildah tag "$image" localhost/iptaudit:latest
if [[ $save -eq 1 ]]; then
  rm -f "dist/iptaudit-$version.oci.tar"
  buildah push --quiet "$image" "oci-archive:dist/iptaudit-$version.oci.tar:$image"
  echo "dist/iptaudit-$version.oci.tar: $(stat -c %s "dist/iptaudit-$version.oci.tar") bytes"
fi
echo "$image (also localhost/iptaudit:latest): $(buildah images --format '{{.Size}}' "$image" | head -1)"
