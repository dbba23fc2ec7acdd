#!/usr/bin/env bash
# The whole test suite: system packages, build, unit tests and the network-namespace integration tests.
# Run as root for the namespace tests; without root they skip with a reason (unless IPTAUDIT_REQUIRE_NETNS=1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
# Swift Testing only (the suite has no XCTest cases). The test bundle is run directly rather than through
# `swift test`, whose wait for the bundle goes through Foundation's Process and was seen to hang under load
# after the bundle had exited; the bundle prints the same Swift Testing summary.
exec "$(swift build --build-tests --show-bin-path)/iptauditPackageTests.xctest" --testing-library swift-testing "$@"
