#!/usr/bin/env python3
"""Print N nat rules of varied matches in one chain, jumped from nat OUTPUT, as iptables-restore input.

Usage: gen-varied-rules.py [--rules N] [--seed S] [--chain NAME] [--subchains K] [--after]

The chain (VARIED by default) mixes what real tables test: source/destination addresses and CIDRs (/32 to /8,
some inverted), protocols (tcp, udp, icmp, sctp), single ports, port ranges, multiport lists, input and output
interfaces (exact and wildcard), owner uid/gid (single and ranges, some inverted), marks and connmarks with
masks, conntrack states, and targets RETURN, ACCEPT, DROP, REDIRECT, DNAT, MARK and jumps / gotos into K
small sub-chains (which themselves mix the same matches and may RETURN). `-A OUTPUT -j VARIED` comes before
whatever OUTPUT already holds (use --after to append it instead, i.e. behind Istio's ISTIO_OUTPUT jump).

Feed it to benchmarks/combine-save.py with an Istio dump to get a `verify --input` workload. Deterministic for
a given seed; Python 3 standard library only. Every rule tests at least one address or port, as real tables do
(a catch-all rule would end every walk early and hide the cost of the rules behind it).
"""

import argparse
import random
import sys


def generate(n, seed, chain, subchains, after):
    rng = random.Random(seed)
    subs = ["%s-SUB%d" % (chain, i) for i in range(subchains)]
    marks = [0x1, 0x2, 0x4000, 0x539, 0x10000, 0xff00]

    def addr():
        kind = rng.random()
        if kind < 0.55:
            return "10.%d.%d.%d/32" % (rng.randrange(96, 112), rng.randrange(256), rng.randrange(1, 255))
        if kind < 0.8:
            return "10.%d.%d.0/24" % (rng.randrange(96, 112), rng.randrange(256))
        if kind < 0.97:
            return "172.%d.0.0/16" % rng.randrange(16, 32)
        return "%d.0.0.0/8" % rng.choice([10, 100, 192])

    def port():
        return rng.choice([22, 53, 80, 443, 3306, 5432, 6379, 8080, 9080, 15001, 15006]) if rng.random() < 0.3 \
            else rng.randrange(1, 65536)

    def port_range():
        lo = rng.randrange(1, 60000)
        return "%d:%d" % (lo, lo + rng.randrange(1, 5000))

    def rule(in_chain, allow_jump):
        parts = ["-A", in_chain]
        if rng.random() < 0.35:
            parts += (["!"] if rng.random() < 0.1 else []) + ["-s", addr()]
        if rng.random() < 0.6:
            parts += (["!"] if rng.random() < 0.05 else []) + ["-d", addr()]
        if rng.random() < 0.12:
            parts += (["!"] if rng.random() < 0.2 else []) + ["-i", rng.choice(["eth0", "eth1", "veth+", "lo", "cali+"])]
        if rng.random() < 0.15:
            parts += (["!"] if rng.random() < 0.2 else []) + ["-o", rng.choice(["eth0", "eth1", "veth+", "lo", "tun+"])]
        proto = rng.choices(["tcp", "udp", "icmp", "sctp", None], [45, 25, 5, 2, 23])[0]
        if proto:
            parts += ["-p", proto]
        if proto in ("tcp", "udp"):
            r = rng.random()
            if r < 0.5:
                parts += ["-m", proto] + (["!"] if rng.random() < 0.08 else []) + ["--dport", str(port())]
            elif r < 0.65:
                parts += ["-m", proto, "--dport", port_range()]
            elif r < 0.72:
                parts += ["-m", proto, "--sport", str(port())]
            elif r < 0.9:
                ports = sorted({port() for _ in range(rng.randrange(2, 8))})
                if rng.random() < 0.3 and len(ports) > 1:
                    ports[-1] = "%d:%d" % (ports[-1], min(65535, ports[-1] + rng.randrange(1, 100)))
                parts += ["-m", "multiport", rng.choice(["--dports", "--sports", "--ports"]),
                          ",".join(str(p) for p in ports)]
        if rng.random() < 0.12:
            parts += ["-m", "owner"]
            if rng.random() < 0.7:
                uid = str(rng.choice([0, 1000, 1337, 1338, 65534, rng.randrange(1, 100000)]))
                if rng.random() < 0.15:
                    uid = "%s-%d" % (uid, int(uid) + rng.randrange(1, 1000))
                parts += (["!"] if rng.random() < 0.2 else []) + ["--uid-owner", uid]
            else:
                parts += (["!"] if rng.random() < 0.2 else []) + ["--gid-owner", str(rng.choice([0, 1337, 1000, 999, rng.randrange(1, 100000)]))]
        if rng.random() < 0.08:
            m = rng.choice(marks)
            parts += ["-m", "mark"] + (["!"] if rng.random() < 0.2 else []) + ["--mark", "0x%x/0x%x" % (m, m | rng.choice([0, 0xff, 0xffff]))]
        if rng.random() < 0.03:
            parts += ["-m", "connmark", "--mark", "0x%x" % rng.choice(marks)]
        if rng.random() < 0.1:
            states = sorted(rng.sample(["NEW", "RELATED", "ESTABLISHED", "INVALID", "UNTRACKED"], rng.randrange(1, 3)))
            parts += ["-m", "conntrack"] + (["!"] if rng.random() < 0.1 else []) + ["--ctstate", ",".join(states)]
        if not any(w in parts for w in ("-s", "-d", "--dport", "--sport", "--dports", "--sports", "--ports")):
            # Every rule is selective on something, as in real tables: a catch-all would end the chain early.
            at = parts.index("-p") if "-p" in parts else len(parts)
            parts[at:at] = ["-d", addr()]
        t = rng.random()
        if allow_jump and subs and t < 0.08:
            parts += ["-j" if rng.random() < 0.8 else "-g", rng.choice(subs)]
        elif t < 0.4:
            parts += ["-j", "RETURN"]
        elif t < 0.62:
            parts += ["-j", "ACCEPT"]
        elif t < 0.7:
            parts += ["-j", "DROP"]
        elif t < 0.8 and proto == "tcp":
            parts += ["-j", "REDIRECT", "--to-ports", str(rng.choice([15001, 15006, 8080]))]
        elif t < 0.9:
            parts += ["-j", "DNAT", "--to-destination", "10.244.%d.%d" % (rng.randrange(256), rng.randrange(1, 255))]
        elif t < 0.93:
            parts += ["-j", "MARK", "--set-xmark", "0x%x/0xffffffff" % rng.choice(marks)]
        else:
            parts += ["-j", "RETURN"]
        return " ".join(parts)

    out = ["*nat", ":%s - [0:0]" % chain] + [":%s - [0:0]" % s for s in subs]
    out.append(("-A OUTPUT -j %s" if after else "-I OUTPUT 1 -j %s") % chain)
    out += [rule(chain, True) for _ in range(n)]
    for s in subs:
        out += [rule(s, False) for _ in range(rng.randrange(1, 6))]
    out.append("COMMIT")
    return "\n".join(out) + "\n"


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rules", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--chain", default="VARIED")
    p.add_argument("--subchains", type=int, default=20)
    p.add_argument("--after", action="store_true", help="append the jump to OUTPUT instead of inserting it first")
    a = p.parse_args(argv)
    sys.stdout.write(generate(a.rules, a.seed, a.chain, a.subchains, a.after))


if __name__ == "__main__":
    main(sys.argv[1:])
