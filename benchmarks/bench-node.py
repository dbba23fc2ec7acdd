#!/usr/bin/env python3
"""Benchmark of `iptaudit node` over a simulated node of N pod network namespaces, beside `iptables-legacy-save`
run once per namespace in the same run.

Each pod namespace gets a veth (its node side in one extra namespace, so the host's links are untouched), a pod
IP, and rules from the corpus; most are sidecar pods held by a `pilot-agent` (a copy of sleep) running as UID
1337 in a private mount namespace whose /etc carries Istio's downward-API files and the proxy's environment, as
in Tests/IntegrationTests/NodeAuditTests.swift. The mix per 10 pods: 6 legacy sidecars, 2 iptables-nft
sidecars, 1 ambient (legacy), 1 not meshed. Then, alternating, R times each:
  * `iptaudit node --output json`                        (discovery, every namespace read and verified)
  * `iptables-legacy-save` in every pod namespace, one after the other (`nsenter --net=/run/netns/NAME`)
and prints medians. Needs root. Python 3 standard library only. Cleans up everything it made.

Usage: benchmarks/bench-node.py [--pods N ...] [--runs R] [--binary PATH] [--jobs J]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests/Fixtures/istio/master/live-save")
SIDECAR = os.path.join(FIX, "cni-sidecar-iptables/basic.ipv4.save")
AMBIENT = os.path.join(FIX, "ambient-iptables/default.ipv4.save")


def run(argv, **kw):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


class Node:
    def __init__(self, count):
        self.tag = "iptaudit-nb-%d" % os.getpid()
        self.dir = tempfile.mkdtemp(prefix="iptaudit-node-bench-")
        self.lock = os.path.join(self.dir, "xtables.lock")
        self.names, self.holders = [], []
        self.bridge = self.tag + "-br"
        run(["ip", "netns", "add", self.bridge])
        os.makedirs(os.path.join(self.dir, "bin"))
        for b in ("pilot-agent", "pause"):
            shutil.copy("/usr/bin/sleep", os.path.join(self.dir, "bin", b))
        try:
            for i in range(count):
                self.add(i)
        except BaseException:
            self.close()
            raise

    def add(self, i):
        name = "%s-%d" % (self.tag, i)
        run(["ip", "netns", "add", name])
        self.names.append(name)
        ip = "10.%d.%d.%d" % (80 + i // 60000, (i // 250) % 240, i % 250 + 2)
        run(["ip", "-n", self.bridge, "link", "add", "v%d" % i, "type", "veth", "peer", "name", "eth0", "netns", name])
        run(["ip", "-n", name, "addr", "add", ip + "/8", "dev", "eth0"])
        run(["ip", "-n", name, "link", "set", "eth0", "up"])
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        kind = i % 10
        env = dict(os.environ, XTABLES_LOCKFILE=self.lock)
        if kind < 6:
            rules, restore, binary = SIDECAR, "iptables-legacy-restore", "pilot-agent"
        elif kind < 8:
            rules, restore, binary = SIDECAR, "iptables-nft-restore", "pilot-agent"
        elif kind == 8:
            rules, restore, binary = AMBIENT, "iptables-legacy-restore", "pause"
        else:
            rules, restore, binary = None, None, "pause"
        if rules:
            with open(rules) as f:
                run(["ip", "netns", "exec", name, restore], input=f.read(), env=env)
        etc = os.path.join(self.dir, "etc-%d" % i)
        os.makedirs(os.path.join(etc, "istio/pod"))
        shutil.copy("/etc/ld.so.cache", etc)
        with open(os.path.join(etc, "resolv.conf"), "w") as f:
            f.write("nameserver 10.96.0.10\nsearch default.svc.cluster.local\n")
        penv = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        uid = "65535"
        if binary == "pilot-agent":
            uid = "1337"
            with open(os.path.join(etc, "istio/pod/annotations"), "w") as f:
                f.write('sidecar.istio.io/status="{\\"containers\\":[\\"istio-proxy\\"]}"\n')
            with open(os.path.join(etc, "istio/pod/labels"), "w") as f:
                f.write('app="bench-%d"\n' % i)
            penv.update({"ISTIO_META_CLUSTER_ID": "Kubernetes", "INSTANCE_IP": ip, "POD_NAME": "bench-%d" % i,
                         "POD_NAMESPACE": "bench"})
        p = subprocess.Popen(["ip", "netns", "exec", name, "unshare", "--mount", "--propagation", "private", "sh", "-c",
                              'mount --bind "$0" /etc && exec setpriv --reuid="$1" --regid="$1" --clear-groups "$2" infinity',
                              etc, uid, os.path.join(self.dir, "bin", binary)], env=penv)
        self.holders.append(p)

    def close(self):
        for p in self.holders:
            p.send_signal(signal.SIGKILL)
            p.wait()
        for name in self.names + [self.bridge]:
            subprocess.run(["ip", "netns", "delete", name])
        shutil.rmtree(self.dir, ignore_errors=True)


def timed(argv, ok=(0, 1)):
    start = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if p.returncode not in ok:
        sys.exit("benchmark command failed (%d): %s\n%s" % (p.returncode, " ".join(argv), p.stderr.decode()))
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, nargs="+", default=[100, 250])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build/release/iptaudit"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    node_cmd = [a.binary, "node", "--output", "json"] + (["--jobs", str(a.jobs)] if a.jobs else [])
    print("%-6s %-44s %12s %14s" % ("pods", "command", "median", "per pod"))
    for count in a.pods:
        node = Node(count)
        try:
            time.sleep(0.5)
            seen = subprocess.run(node_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.count('"inode"')
            audit, saves = [], []
            for _ in range(a.runs):
                audit.append(timed(node_cmd))
                start = time.perf_counter()
                for name in node.names:
                    timed(["nsenter", "--net=/run/netns/" + name, "iptables-legacy-save"], ok=(0,))
                saves.append(time.perf_counter() - start)
            for label, xs in (("iptaudit node (%d namespaces seen)" % seen, audit),
                              ("iptables-legacy-save x %d" % count, saves)):
                m = statistics.median(xs)
                print("%-6d %-44s %10.3f s %11.2f ms" % (count, label, m, m * 1000 / count))
            sys.stdout.flush()
        finally:
            node.close()


if __name__ == "__main__":
    main()
