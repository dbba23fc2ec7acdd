#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages iptaudit builds and tests with. Skips apt entirely when all are present.
set -euo pipefail

packages=(
  pkg-config libiptc-dev   # libiptc headers and pkg-config files, for the legacy-table reader
  libnftables-dev          # libnftables headers and pkg-config file, for reading native nf_tables rulesets in-process
  libyaml-dev              # libyaml headers and pkg-config file (yaml-0.1), for reading pod manifests (--pod)
  iptables                 # iptables-legacy-save/-restore and iptables-nft-save/-restore, used by the readers and tests
  nftables ipset           # nf_tables CLI and ipsets, for backend and `-m set` tests
  iproute2 util-linux      # ip netns / ip rule; unshare, nsenter, setpriv
  graphviz                 # dot, to render capture graphs
  strace                   # the tests' witness that a live read starts no program and opens no inet socket
  libxml2-utils            # xmllint, to check report XML is well formed
  python3 python3-junitparser python3-jsonschema  # kube-proxy generator and benchmarks; a real JUnit consumer and a JSON Schema validator for the report tests
  prometheus               # a real Prometheus scraping `--listen` in the tests, and promtool (check metrics, check rules)
)
# PyPI packages, for the `python3` on PATH (the one the tests run), for scripts/validate-deploy.py: Kubernetes' own
# schemas (bundled by kubernetes-validate, so validation is offline), YAML, JSON Schema.
python_packages=(kubernetes-validate pyyaml jsonschema)
python_modules=(kubernetes_validate yaml jsonschema)

install_python_packages() {
  local missing_python=()
  for i in "${!python_modules[@]}"; do
    python3 -c "import ${python_modules[$i]}" 2>/dev/null || missing_python+=("${python_packages[$i]}")
  done
  if [ ${#missing_python[@]} -gt 0 ]; then
    python3 -m pip install -q "${missing_python[@]}"
  fi
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  install_python_packages
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
install_python_packages
