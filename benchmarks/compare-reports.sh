#!/bin/sh
# Runs two iptaudit binaries' `verify --format json` (default configuration) over every dump of the corpus and
# the goldens, and reports any difference in output or exit code. Used to show a performance change keeps every
# report identical.
# Usage: benchmarks/compare-reports.sh OLD_BINARY NEW_BINARY [FILES...]
set -u
old=$1 new=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 0 ]; then
    set -- $(find "$root/Tests/Fixtures/istio" -name '*.save' -o -name '*.golden' | sort)
fi
tmp=$(mktemp -d)
n=0 differ=0
for f in "$@"; do
    n=$((n + 1))
    "$old" verify --input "$f" --format json > "$tmp/old" 2>&1; a=$?
    "$new" verify --input "$f" --format json > "$tmp/new" 2>&1; b=$?
    if [ $a -ne $b ] || ! cmp -s "$tmp/old" "$tmp/new"; then
        differ=$((differ + 1))
        echo "DIFFERS: $f (exit $a vs $b)"
    fi
done
rm -rf "$tmp"
echo "$n inputs, $differ differ"
[ $differ -eq 0 ]
