#!/usr/bin/env bash
# The release binary as shipped: the Swift runtime, libstdc++ and libgcc's unwinder linked statically (Package.swift),
# so at run time it needs glibc alone; libiptc, libnftables and libyaml are dlopened only when rules or a manifest
# are read. Writes a stripped copy to dist/iptaudit-VERSION-linux-ARCH with a sha256sum-format checksum beside it,
# and prints the sizes and what the loader links at start.
#   IPTAUDIT_VERSION  the version in the file name (default: git describe --tags --always)
#   IPTAUDIT_RELEASE_BIN  an already built release binary to package instead of building one
#   IPTAUDIT_DIST  the directory to write to (default: dist)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${IPTAUDIT_VERSION:-$(git describe --tags --always 2>/dev/null || echo unknown)}"
arch="$(uname -m)"
if [[ -n "${IPTAUDIT_RELEASE_BIN:-}" ]]; then
  binary="$IPTAUDIT_RELEASE_BIN"
else
  swift build -c release --static-swift-stdlib --product iptaudit
  binary="$(swift build -c release --static-swift-stdlib --product iptaudit --show-bin-path)/iptaudit"
fi
name="iptaudit-$version-linux-$arch"
dist="${IPTAUDIT_DIST:-dist}"
mkdir -p "$dist"
strip -o "$dist/$name" "$binary"
chmod 0755 "$dist/$name"
(cd "$dist" && sha256sum "$name" > "$name.sha256")
echo "$dist/$name"
echo "size: $(stat -c %s "$binary") bytes unstripped, $(stat -c %s "$dist/$name") bytes stripped"
echo "sha256: $(cut -d' ' -f1 "$dist/$name.sha256")"
echo "ldd:"
ldd "$dist/$name" | sed -E 's/ \(0x[0-9a-f]+\)//; s/^[[:space:]]*/  /'
# Shell completions, from the binary's own command definitions, and the man page scripts/test.sh generates
# (swift-argument-parser's generate-manual plugin; run `swift package generate-manual` first if it is missing).
mkdir -p "$dist/completions"
"$dist/$name" --generate-completion-script bash > "$dist/completions/iptaudit.bash"
"$dist/$name" --generate-completion-script zsh > "$dist/completions/_iptaudit"
"$dist/$name" --generate-completion-script fish > "$dist/completions/iptaudit.fish"
manpage="${IPTAUDIT_MANPAGE:-.build/plugins/GenerateManual/outputs/iptaudit/iptaudit.1}"
if [[ -f "$manpage" ]]; then
  cp "$manpage" "$dist/iptaudit.1"
  echo "man page: $dist/iptaudit.1"
else
  echo "man page: not generated yet (swift package generate-manual), not included"
fi
echo "completions: $dist/completions/{iptaudit.bash,_iptaudit,iptaudit.fish}"
