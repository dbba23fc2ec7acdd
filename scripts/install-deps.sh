#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages iptaudit builds and tests with. Skips apt entirely when all are present.
#   --release  also the release tooling: buildah and podman (with their OCI runtime and helpers) for scripts/image.sh
#              and the image test, hyperfine for scripts/measure-release.sh, shellcheck for the plugin's test
#   --cluster  also the cluster tooling: Debian's prometheus (a real server scraping `node --listen`, promtool) and,
#              from PyPI, kubernetes-validate (Kubernetes' schemas, offline) for scripts/validate-deploy.py
# scripts/demo.sh needs neither; scripts/test.sh (what CI runs) installs both. Without them their tests (ImageTests'
# podman case, PrometheusScrapeTests, DeployManifestTests, the plugin's shellcheck) skip, naming the missing tool.
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
  python3 python3-junitparser python3-jsonschema  # kube-proxy generator and benchmarks; a real JUnit consumer and a JSON Schema validator (reports, SARIF 2.1.0)
  python3-yaml             # PyYAML, a real YAML reader for `-o yaml`
  bsdutils                 # script(1): a pseudo-terminal for the `--color auto` test
  binutils                 # strip for scripts/release.sh; objdump, the release binary's glibc floor
)
# With --cluster: PyPI packages, for the `python3` on PATH (the one the tests run), for scripts/validate-deploy.py:
# Kubernetes' own schemas (bundled by kubernetes-validate, so validation is offline), YAML, JSON Schema.
python_packages=()
python_modules=()

install_python_packages() {
  local missing_python=()
  [ ${#python_modules[@]} -gt 0 ] || return 0
  for i in "${!python_modules[@]}"; do
    python3 -c "import ${python_modules[$i]}" 2>/dev/null || missing_python+=("${python_packages[$i]}")
  done
  if [ ${#missing_python[@]} -gt 0 ]; then
    python3 -m pip install -q "${missing_python[@]}"
  fi
}

for option in "$@"; do
  case "$option" in
    --release)
      packages+=(
        buildah podman crun runc conmon golang-github-containers-common  # build the image, run it (ImageTests: runc)
        uidmap fuse-overlayfs slirp4netns                             # what podman asks for on a default install
        hyperfine shellcheck                                          # scripts/measure-release.sh; the plugin's lint
      ) ;;
    --cluster)
      packages+=(prometheus)  # a real Prometheus scraping `--listen` (PrometheusScrapeTests), promtool (metrics, rules)
      python_packages=(kubernetes-validate pyyaml jsonschema)
      python_modules=(kubernetes_validate yaml jsonschema) ;;
    *) echo "usage: $0 [--release] [--cluster]" >&2; exit 64 ;;
  esac
done

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
