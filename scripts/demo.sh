#!/usr/bin/env bash
# The demo: iptaudit's main job on the built-in example pod (examples/), needing nothing but this repository.
#  1. verify a healthy pod's saved rules against its manifest (exit 0);
#  2. verify a broken copy (exit 1: a foreign RETURN above Istio's jump, the proxy GID exemption deleted);
#  3. as root: load the broken rules into a private network namespace and verify them live through libiptc.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --product iptaudit >/dev/null
bin="$(swift build --show-bin-path)/iptaudit"

run() { echo "\$ iptaudit $*"; "$bin" "$@" || echo "(exit $?)"; echo; }

run verify --pod examples/pod.yaml --input examples/healthy.save
run verify --pod examples/pod.yaml --input examples/broken.save

if [ "$(id -u)" -eq 0 ] && ip netns add iptaudit-demo 2>/dev/null; then
  trap 'ip netns delete iptaudit-demo' EXIT
  XTABLES_LOCKFILE=$(mktemp) ip netns exec iptaudit-demo iptables-legacy-restore < examples/broken.save
  run verify --pod examples/pod.yaml --netns /run/netns/iptaudit-demo
else
  echo "(run as root to also verify the rules live in a private network namespace)"
fi
