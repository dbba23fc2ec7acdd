#!/usr/bin/env bash
# The whole test suite: system packages, the release and debug builds, unit tests and the network-namespace
# integration tests.
# Run as root for the namespace tests; without root they skip with a reason (unless IPTAUDIT_REQUIRE_NETNS=1).
set -euo pipefail
cd "$(dirname "$0")/.."
# Everything, the release and cluster tooling included: the image under podman, a real Prometheus and Kubernetes'
# schemas are part of the suite. Where that tooling cannot be installed (no PyPI, a system Python that refuses
# pip), the base set is enough to build and test; the tests that need the rest skip, naming what is missing.
scripts/install-deps.sh --release --cluster || {
  echo "test.sh: the release or cluster tooling could not be installed; its tests will skip, naming it" >&2
  scripts/install-deps.sh
}
# The release binary as shipped (static Swift runtime), first: a test runs `observe` from a copy of it in a root
# filesystem of glibc's files alone (with IPTAUDIT_REQUIRE_NETNS=1 that test fails when this is not set).
# Set IPTAUDIT_RELEASE_BIN yourself to test an existing build instead.
if [[ -z "${IPTAUDIT_RELEASE_BIN:-}" ]]; then
  swift build -c release --static-swift-stdlib --product iptaudit
  IPTAUDIT_RELEASE_BIN="$(swift build -c release --static-swift-stdlib --product iptaudit --show-bin-path)/iptaudit"
  export IPTAUDIT_RELEASE_BIN
fi
swift build --build-tests
# The man page, generated from the command definitions by swift-argument-parser's generate-manual plugin (dated
# by the last commit, so it is reproducible); ManualAndCompletionTests checks it. scripts/release.sh ships it.
swift package generate-manual --configuration debug --date "$(git log -1 --format=%cs 2>/dev/null || date -u +%F)" >/dev/null
export IPTAUDIT_MANPAGE="$PWD/.build/plugins/GenerateManual/outputs/iptaudit/iptaudit.1"
# Swift Testing only (the suite has no XCTest cases). The test bundle is run directly rather than through
# `swift test`, whose wait for the bundle goes through Foundation's Process and was seen to hang under load
# after the bundle had exited; the bundle prints the same Swift Testing summary.
exec "$(swift build --build-tests --show-bin-path)/iptauditPackageTests.xctest" --testing-library swift-testing "$@"
