#!/usr/bin/env bash
# A longer run of the seeded mutation fuzzer (docs/robustness.md): scripts/fuzz.sh [ITERATIONS] [SEED].
# CI runs 300 inputs with seed 10 as part of the suite; failing inputs land in $TMPDIR/iptaudit-fuzz-findings/.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
export IPTAUDIT_FUZZ_ITERATIONS="${1:-5000}" IPTAUDIT_FUZZ_SEED="${2:-$(date +%s)}"
echo "fuzz: $IPTAUDIT_FUZZ_ITERATIONS inputs, seed $IPTAUDIT_FUZZ_SEED"
exec "$(swift build --build-tests --show-bin-path)/iptauditPackageTests.xctest" --testing-library swift-testing --filter FuzzTests
