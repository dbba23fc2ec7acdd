#!/usr/bin/env python3
"""Print a kube-proxy (iptables mode) style nat table as iptables-restore input.

Usage: gen-kube-proxy-rules.py [--services N] [--endpoints M] [--seed S]

The shape follows what kube-proxy programs for ClusterIP services: KUBE-SERVICES dispatches on
cluster IP and port to one KUBE-SVC-<hash> chain per service, which load-balances with
`-m statistic --mode random --probability` over one KUBE-SEP-<hash> chain per endpoint, which
DNATs to the pod; KUBE-MARK-MASQ / KUBE-POSTROUTING mark and masquerade hairpin and off-cluster
traffic. Chain names are hashed like kube-proxy's (base32 of SHA-256, 16 characters).

Used by the integration tests (a large table that must read back byte-identically) and by the
benchmarks. Python 3 standard library only; output is deterministic for a given seed.
"""

import argparse
import base64
import hashlib
import random
import sys


def chain_name(prefix, *parts):
    digest = hashlib.sha256("".join(parts).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:16]


def probability(remaining):
    """kube-proxy's 1/remaining, printed with 10 decimals as it does."""
    return "%0.10f" % (1.0 / remaining)


def generate(services, endpoints, seed):
    rng = random.Random(seed)
    chains = ["KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-MARK-MASQ", "KUBE-NODEPORTS"]
    rules = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
    ]
    service_rules = []
    for s in range(services):
        namespace = "ns-%d" % (s % 50)
        name = "svc-%d" % s
        port_name = "http" if s % 3 else "grpc"
        protocol = "tcp" if s % 7 else "udp"
        svc_port = 80 if protocol == "tcp" else 53
        target_port = 8080 + (s % 5)
        cluster_ip = "10.96.%d.%d" % ((s // 250) % 256, s % 250 + 1)
        label = "%s/%s:%s" % (namespace, name, port_name)
        svc = chain_name("KUBE-SVC-", label, protocol)
        chains.append(svc)
        service_rules.append(
            '-A KUBE-SERVICES -d %s/32 -p %s -m comment --comment "%s cluster IP" -m %s --dport %d -j %s'
            % (cluster_ip, protocol, label, protocol, svc_port, svc))
        rules.append(
            '-A %s ! -s 10.244.0.0/16 -d %s/32 -p %s -m comment --comment "%s cluster IP" -m %s --dport %d -j KUBE-MARK-MASQ'
            % (svc, cluster_ip, protocol, label, protocol, svc_port))
        for e in range(endpoints):
            pod_ip = "10.244.%d.%d" % (rng.randrange(0, 256), rng.randrange(2, 255))
            endpoint = "%s:%d" % (pod_ip, target_port)
            sep = chain_name("KUBE-SEP-", label, protocol, endpoint, str(e))
            chains.append(sep)
            remaining = endpoints - e
            balance = "" if remaining == 1 else " -m statistic --mode random --probability %s" % probability(remaining)
            rules.append('-A %s -m comment --comment "%s -> %s"%s -j %s' % (svc, label, endpoint, balance, sep))
            rules.append('-A %s -s %s/32 -m comment --comment "%s" -j KUBE-MARK-MASQ' % (sep, pod_ip, label))
            rules.append('-A %s -p %s -m comment --comment "%s" -m %s -j DNAT --to-destination %s'
                         % (sep, protocol, label, protocol, endpoint))
    service_rules.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
        " -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")

    out = ["*nat"]
    out += [":%s - [0:0]" % c for c in chains]
    out += rules + service_rules
    out.append("COMMIT")
    return "\n".join(out) + "\n"


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=2000, help="number of services (default 2000)")
    parser.add_argument("--endpoints", type=int, default=3, help="endpoints per service (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="seed for the pod addresses (default 1)")
    args = parser.parse_args(argv)
    if args.services < 0 or args.endpoints < 1:
        parser.error("--services must be >= 0 and --endpoints >= 1")
    sys.stdout.write(generate(args.services, args.endpoints, args.seed))


if __name__ == "__main__":
    main(sys.argv[1:])
