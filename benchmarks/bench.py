#!/usr/bin/env python3
"""End-to-end benchmark of iptaudit against iptables-legacy-save, in the same run, on the same tables.

Loads each workload into a private network namespace (`ip netns add`), then times, alternating runs, each
started the same way (`nsenter --net=/run/netns/NAME`, so every command pays the same entry cost):
  * `iptables-legacy-save -t nat`             (the reference decoder)
  * `iptaudit show --format save --table nat` (libiptc read + render)
  * `iptaudit verify`                         (read + routing over netlink + symbolic verification + report)
and prints medians and ratios to the reference. The floor under all of them, the kernel copying the table out
(`IPT_SO_GET_INFO` + `IPT_SO_GET_ENTRIES`, timed inside benchmarks/getsockopt-floor.c), is printed beside. For the
pod, two more floors are timed with the rest, entered the same way: starting a process (`/bin/true`) and starting
a Swift program that prints one line, linked as iptaudit is (benchmarks/StartupFloor, built here with SwiftPM).
Needs root, a C compiler and the Swift toolchain. Python 3 standard library only.

With `--varied N ...`, each N is also a workload of its own: the pod's rules with N rules of varied matches in one
chain before them (scripts/gen-varied-rules.py: addresses, ports, owners, marks and states mixed, MARKs and jumps
that return; `--terminal` leaves out the MARKs and sub-chains, so every rule ends its packets; the kernel refuses
DROP in nat, so those rules RETURN).

Usage: benchmarks/bench.py [--runs N] [--binary PATH] [--services N] [--pod-only] [--varied N ...] [--terminal]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "Tests/Fixtures/istio/master/cni-sidecar-iptables/basic.txt.golden")
LOADER = os.path.join(ROOT, "Tests/Fixtures/istio/load-golden.sh")
GENERATOR = os.path.join(ROOT, "scripts/gen-kube-proxy-rules.py")
VARIED = os.path.join(ROOT, "scripts/gen-varied-rules.py")
FLOOR_SOURCE = os.path.join(ROOT, "benchmarks/getsockopt-floor.c")


def run(argv, **kw):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


class Namespace:
    made = 0

    def __init__(self):
        Namespace.made += 1
        self.name = "iptaudit-bench-%d-%d" % (os.getpid(), Namespace.made)
        self.lock = tempfile.NamedTemporaryFile(prefix="iptaudit-bench-lock-").name
        run(["ip", "netns", "add", self.name])

    def exec(self, argv, **kw):
        env = dict(os.environ, XTABLES_LOCKFILE=self.lock)
        return run(["ip", "netns", "exec", self.name] + argv, env=env, **kw)

    def close(self):
        subprocess.run(["ip", "netns", "delete", self.name])


def timed(argv, env=None):
    start = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - start
    if p.returncode not in (0, 1):  # verify exits 1 when it has findings; that is a result, not a failure
        sys.exit("benchmark command failed (%d): %s\n%s" % (p.returncode, " ".join(argv), p.stderr.decode()))
    return elapsed


def measure(ns, binary, runs, startup_floor=None):
    env = dict(os.environ, XTABLES_LOCKFILE=ns.lock)
    enter = ["nsenter", "--net=/run/netns/" + ns.name]
    commands = {}
    if startup_floor:
        commands[START_PROCESS] = enter + ["/bin/true"]
        commands[START_SWIFT] = enter + [startup_floor]
    commands.update({
        "iptables-legacy-save -t nat": enter + ["iptables-legacy-save", "-t", "nat"],
        "iptaudit show --format save": enter + [binary, "show", "--format", "save", "--table", "nat", "--family", "ipv4"],
        "iptaudit verify": enter + [binary, "verify", "--format", "json", "--no-ipv6"],
    })
    samples = {k: [] for k in commands}
    for _ in range(runs):
        for name, argv in commands.items():  # interleaved, so drift hits every command alike
            samples[name].append(timed(argv, env))
    return {k: statistics.median(v) for k, v in samples.items()}


START_PROCESS = "floor: process start (/bin/true)"
START_SWIFT = "floor: Swift start, print a line"


def startup_floor():
    """benchmarks/StartupFloor built as the release binary is (static Swift runtime, Package.swift's releaseLink)."""
    build = ["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", "StartupFloor"]
    run(build, cwd=ROOT)
    return os.path.join(run(build + ["--show-bin-path"], cwd=ROOT).stdout.strip(), "StartupFloor")


def floor(ns, runs):
    """Median milliseconds of the kernel's table copy, and its size in bytes."""
    exe = os.path.join(tempfile.gettempdir(), "iptaudit-getsockopt-floor")
    run(["cc", "-O2", "-o", exe, FLOOR_SOURCE])
    ms, size = ns.exec([exe, "nat", str(max(runs, 5))]).stdout.split()
    return float(ms) / 1000, int(size)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build/release/iptaudit"))
    ap.add_argument("--services", type=int, default=10000, help="kube-proxy services (3 endpoints each: ~10 rules per service)")
    ap.add_argument("--pod-only", action="store_true", help="time the pod's table only (start-up work: seconds, not minutes)")
    ap.add_argument("--varied", type=int, nargs="*", default=[], help="also time the pod with this many varied rules before it")
    ap.add_argument("--terminal", action="store_true", help="varied rules without MARKs and sub-chains")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench.py needs root (it creates a network namespace)")
    if not os.access(args.binary, os.X_OK):
        sys.exit("no iptaudit binary at %s: run `swift build -c release` first" % args.binary)

    workloads = []
    ns = Namespace()
    try:
        ns.exec(["sh", LOADER, GOLDEN, "4", "legacy"])
        rules = ns.exec(["iptables-legacy-save", "-t", "nat"]).stdout.count("\n-A ")
        pod = measure(ns, args.binary, args.runs, startup_floor=startup_floor())
        workloads.append(("pod (Istio default sidecar, nat)", rules, pod, floor(ns, args.runs)))
        if args.pod_only:
            return report(workloads)
        for n in args.varied:
            workloads.append(varied(args, n))
        if args.varied:
            return report(workloads)
        restore = run([sys.executable, GENERATOR, "--services", str(args.services), "--endpoints", "3"]).stdout
        ns.exec(["iptables-legacy-restore", "--noflush"], input=restore)
        rules = ns.exec(["iptables-legacy-save", "-t", "nat"]).stdout.count("\n-A ")
        workloads.append(("pod + kube-proxy-style nat", rules, measure(ns, args.binary, max(3, args.runs // 2)), floor(ns, args.runs)))
    finally:
        ns.close()
    report(workloads)


def varied(args, n):
    """The pod with `n` varied rules, in a namespace of its own."""
    shape = ["--subchains", "0"] if args.terminal else []
    restore = run([sys.executable, VARIED, "--rules", str(n)] + shape).stdout
    if args.terminal:
        restore = "".join(line for line in restore.splitlines(True) if "-j MARK" not in line)
    # The kernel refuses DROP in nat (the generator's rules are for `verify --input`): those rules RETURN instead.
    restore = restore.replace(" -j DROP", " -j RETURN")
    ns = Namespace()
    try:
        ns.exec(["sh", LOADER, GOLDEN, "4", "legacy"])
        ns.exec(["iptables-legacy-restore", "--noflush"], input=restore)
        rules = ns.exec(["iptables-legacy-save", "-t", "nat"]).stdout.count("\n-A ")
        name = "pod + %s varied rules" % ("terminal" if args.terminal else "mixed")
        return (name, rules, measure(ns, args.binary, max(3, args.runs // 2)), floor(ns, args.runs))
    finally:
        ns.close()


def report(workloads):
    print("workload                           rules  command                          median      ratio")
    for name, rules, medians, (copy, size) in workloads:
        ref = medians["iptables-legacy-save -t nat"]
        print("%-34s %6d  %-32s %8.2f ms  %6.2fx  (%d bytes)" % (name, rules, "floor: kernel copy (getsockopt)", copy * 1000, copy / ref, size))
        for cmd, m in medians.items():
            print("%-34s %6s  %-32s %8.2f ms  %6.2fx" % ("", "", cmd, m * 1000, m / ref))


if __name__ == "__main__":
    main()
