// The floor under any Swift command-line tool on this machine: a program that prints one line, linked as the
// shipped iptaudit is (static Swift runtime, the same linker settings: Package.swift's `releaseLink`).
// benchmarks/bench.py times it beside `iptables-legacy-save` and iptaudit, entered the same way, so the share of
// a pod-sized read that is only starting a Swift process is measured in the same run, not assumed.
print("iptaudit")
