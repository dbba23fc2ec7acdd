#!/usr/bin/env python3
"""Merge iptables-restore scripts into one iptables-save dump, as `iptables-restore --noflush` would load them.

Usage: combine-save.py BASE.save EXTRA [EXTRA...] > combined.save

BASE is an iptables-save dump (e.g. Tests/Fixtures/istio/master/live-save/cni-sidecar-iptables/basic.ipv4.save);
each EXTRA is restore input for the same tables (scripts/gen-kube-proxy-rules.py, scripts/gen-varied-rules.py).
New chains are declared after the base's; `-A` appends, `-I CHAIN 1` prepends. Python 3 standard library only.
"""

import sys


def parse(text, tables):
    table = None
    for line in text.splitlines():
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table = line[1:].strip()
            tables.setdefault(table, ({}, []))
            continue
        if line == "COMMIT":
            table = None
            continue
        chains, order = tables[table]
        if line.startswith(":"):
            name, policy = line[1:].split()[:2]
            if name not in chains:
                chains[name] = (policy, [])
                order.append(name)
            continue
        words = line.split(" ", 2)
        if words[0] == "-A":
            chains[words[1]][1].append("-A %s %s" % (words[1], words[2]))
        elif words[0] == "-I":
            rest = words[2].split(" ", 1)
            pos = int(rest[0]) if rest[0].isdigit() else 1
            spec = rest[1] if rest[0].isdigit() else words[2]
            chains[words[1]][1].insert(pos - 1, "-A %s %s" % (words[1], spec))
        else:
            sys.exit("unsupported line: " + line)


def main(argv):
    if len(argv) < 1:
        sys.exit(__doc__)
    tables = {}
    for path in argv:
        with open(path) as f:
            parse(f.read(), tables)
    out = []
    for name, (chains, order) in tables.items():
        out.append("*" + name)
        out += [":%s %s [0:0]" % (c, chains[c][0]) for c in order]
        for c in order:
            out += chains[c][1]
        out.append("COMMIT")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
