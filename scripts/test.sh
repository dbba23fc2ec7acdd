#!/usr/bin/env bash
# The whole test suite: system packages, build, unit tests and the network-namespace integration tests.
# Run as root for the namespace tests; without root they skip with a reason (unless IPTAUDIT_REQUIRE_NETNS=1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build
# Swift Testing only: the suite has no XCTest cases, and an "Executed 0 tests" XCTest summary would mislead.
swift test --disable-xctest
