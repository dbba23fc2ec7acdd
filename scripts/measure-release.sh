#!/usr/bin/env bash
# The README's release figures, measured in one run: the binary's size (unstripped, stripped), the image's (where
# buildah is installed), what the loader maps for each kind of run (LD_DEBUG=libs), and start-up time — medians of
# hyperfine runs — of `iptaudit --version`, `show --input` on a small file and a live legacy `show`, beside
# `iptables-legacy-save` on the same tables. Root (a network namespace holds examples/healthy.save). Prints Markdown.
#   IPTAUDIT_RELEASE_BIN  the release binary (default: built by scripts/release.sh); RUNS (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-100}"
for tool in hyperfine python3 ip iptables-legacy-restore; do
  command -v "$tool" >/dev/null || { echo "measure-release: $tool is not installed (scripts/install-deps.sh)" >&2; exit 69; }
done
scripts/release.sh > /tmp/iptaudit-measure-release.$$ 2>&1 || { cat /tmp/iptaudit-measure-release.$$ >&2; exit 1; }
stripped="$(head -1 /tmp/iptaudit-measure-release.$$)"
rm -f /tmp/iptaudit-measure-release.$$
binary="$(realpath "$stripped")"
unstripped="${IPTAUDIT_RELEASE_BIN:-$(swift build -c release --static-swift-stdlib --product iptaudit --show-bin-path)/iptaudit}"

ns="iptaudit-measure-$$"
work="$(mktemp -d)"
trap 'ip netns delete "$ns" 2>/dev/null || true; rm -rf "$work"' EXIT
ip netns add "$ns"
ip netns exec "$ns" iptables-legacy-restore < examples/healthy.save
in_ns() { ip netns exec "$ns" "$@"; }

# shellcheck source=/dev/null
os="$(. /etc/os-release && echo "$PRETTY_NAME")"
echo "Release binary (\`scripts/release.sh\`, $(uname -m), $os, glibc $(ldd --version | head -1 | awk '{print $NF}'); $(date -u +%Y-%m-%d)):"
echo "$(stat -c %s "$unstripped") bytes unstripped, $(stat -c %s "$binary") bytes stripped."
# The image's one layer is scripts/image-rootfs.sh's tree of the stripped binary, as scripts/image.sh tars it.
scripts/image-rootfs.sh "$binary" "$work/rootfs" >/dev/null
tar --numeric-owner --owner=0 --group=0 -C "$work/rootfs" -cf "$work/layer.tar" .
echo "The image's layer (scripts/image-rootfs.sh, $(find "$work/rootfs" -type f | wc -l) files): $(stat -c %s "$work/layer.tar") bytes as tar, $(gzip -9c "$work/layer.tar" | wc -c) gzipped."
if command -v buildah >/dev/null && buildah inspect --type image localhost/iptaudit:latest >/dev/null 2>&1; then
  echo "Image \`localhost/iptaudit:latest\` (scripts/image.sh): $(buildah images --format '{{.Size}}' localhost/iptaudit:latest | head -1)."
fi
echo
echo "Shared objects the loader maps (LD_DEBUG=libs; linux-vdso aside):"
echo
loaded() {  # the files the dynamic loader opened for one run
  LD_DEBUG=libs LD_DEBUG_OUTPUT="$work/ld" "$@" >/dev/null 2>&1 < examples/pod.yaml || true
  cat "$work"/ld.* | sed -n 's/.*calling init: //p' | xargs -rn1 basename | sort -u | paste -sd' ' -
  rm -f "$work"/ld.*
}
echo "| run | loaded |"
echo "| --- | --- |"
echo "| \`--version\` | $(loaded "$binary" --version) |"
echo "| \`show --input examples/healthy.save\` | $(loaded "$binary" show --input examples/healthy.save) |"
echo "| \`show --netns …\` (live, legacy tables) | $(loaded "$binary" show --netns "/run/netns/$ns") |"
echo "| \`verify --pod - --netns …\` (live, legacy tables) | $(loaded "$binary" verify --pod - --netns "/run/netns/$ns") |"
echo
load="$(cut -d' ' -f1 /proc/loadavg)"
in_ns hyperfine -N --style none --warmup 5 --runs "$runs" --export-json "$work/times.json" \
  -n "iptaudit --version" "$binary --version" \
  -n "iptaudit show --input examples/healthy.save" "$binary show --input examples/healthy.save" \
  -n "iptaudit show (live, legacy)" "$binary show" \
  -n "iptables-legacy-save" "iptables-legacy-save" >/dev/null
python3 - "$work/times.json" "$runs" "$load" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
print(f"Start-up, medians of {sys.argv[2]} runs (hyperfine -N, after 5 warm-up runs), in one namespace holding")
print(f"examples/healthy.save; load average {sys.argv[3]} when they started:")
print()
print("| command | median | min |")
print("| --- | ---: | ---: |")
for r in results:
    print(f"| `{r['command']}` | {r['median'] * 1000:.1f} ms | {r['min'] * 1000:.1f} ms |")
PY
