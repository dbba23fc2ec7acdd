import IstioCapture
import NetfilterModel

/// §13.20: Istio's chains are reachable, hold what istio-iptables installs, and nothing is left over.
/// Differences that no other obligation traced to a verdict are `rule-drift` (informational).
enum ChainHygiene: Obligation {
    static let description = ObligationDescription(
        id: "chain-hygiene", title: "Istio's chains hold what istio-iptables installs", invariant: 20,
        quantifiesOver: ["every ISTIO_* chain and every rule, compared with the rules istio-iptables installs for the configuration "
            + "(runs of consecutive RETURN rules compared as sets)"],
        kinds: [.ruleDrift],
        examples: [
            ExampleRules.example("default pod", ExampleRules.pod, .passes),
            ExampleRules.example("leftover chain", ExampleRules.pod, .fails(.ruleDrift, .info)) {
                $0.inserting(":ISTIO_OLD - [0:0]", before: ":ISTIO_OUTPUT - [0:0]")
            },
            ExampleRules.example("a LOG rule added", ExampleRules.pod, .fails(.ruleDrift, .info)) {
                $0.inserting("-A ISTIO_OUTPUT -j LOG", before: "-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
            },
            ExampleRules.example("installed twice", ExampleRules.pod, .fails(.ruleDrift, .warning)) { $0.installedTwice },
        ])

    static func check(_ run: VerificationRun) -> CheckOutput {
        guard !run.checked.isEmpty else { return .notApplicable("no family to check") }
        var out = CheckOutput()
        // Rules and chains on the way of another error or warning are explained there: drift is what changes no verdict.
        // Keys, not interpolated strings: interpolating an enum without a description reflects over it.
        struct Cited: Hashable {
            var family: Family
            var table: TableName
            var chain: ChainName
            var rule: Int?
        }
        var cited: Set<Cited> = []
        var citedChains: Set<Cited> = []
        for f in run.results.values.flatMap(\.findings) where f.severity >= .warning {
            if let t = f.table, let c = f.chain, let n = f.ruleNumber { cited.insert(Cited(family: f.family, table: t, chain: c, rule: n)) }
            for step in f.path {
                citedChains.insert(Cited(family: f.family, table: step.table, chain: step.chain))
                if let n = step.ruleNumber { cited.insert(Cited(family: f.family, table: step.table, chain: step.chain, rule: n)) }
            }
        }
        let id = description.id
        for ctx in run.checked {
            if let refused = ctx.expectationRefused {
                out.notes.append("\(ctx.familyName): no rules to compare with: \(refused)")
                continue
            }
            for (name, number) in ctx.groupsReadFromRules.sorted(by: { $0.key < $1.key }) {
                out.notes.append("\(ctx.familyName): owner group \(name) is taken as gid \(number), the number the rules hold "
                    + "(no /etc/group resolved it: give --pid of the istio-proxy container or --group-file)")
            }
            if let times = ctx.installCount {
                // istio-iptables ran again without removing its earlier rules: one finding, not one per copied rule.
                out.findings.append(ctx.structural(.ruleDrift, .warning, table: nil, chain: nil,
                    message: "Istio's rules are installed \(times == 2 ? "twice" : "\(times) times") over: every chain holds its rules \(times) times in a row "
                        + "(istio-iptables ran again without removing what it installed before). The later copies never decide "
                        + "a packet, but counters split between them and a cleanup that removes one copy leaves the others.",
                    fix: Fix.reinstall, obligation: id))
                continue
            }
            var drift = 0
            let tableNames = Set(ctx.tables.map(\.name) + ctx.expected.map(\.name)).sorted()
            for name in tableNames {
                let actual = ctx.table(name) ?? Table(family: ctx.family, name: name, chains: [])
                let expected = ctx.expected.first { $0.name == name } ?? Table(family: ctx.family, name: name, chains: [])
                let graph = ctx.graph(name) ?? ChainGraph(actual)
                for pos in graph.danglingJumps {
                    out.findings.append(ctx.structural(.ruleDrift, .warning, table: name, chain: pos.chain, rule: pos.number,
                        message: "\(name) \(pos) jumps to a chain that does not exist; the jump does nothing.", fix: Fix.reinstall, obligation: id))
                }
                for cycle in graph.cycles {
                    out.findings.append(ctx.structural(.ruleDrift, .warning, table: name, chain: cycle.first, rule: nil,
                        message: "\(name) chains \(cycle.map(\.rawValue).joined(separator: " → ")) jump in a cycle (the kernel refuses such a table).",
                        fix: Fix.reinstall, obligation: id))
                }
                let expectedGraph = ChainGraph(expected)
                for chain in actual.chains where ctx.layout.isIstioChain(chain.name, in: name) {
                    if expected.chain(chain.name) == nil {
                        out.findings.append(ctx.structural(.ruleDrift, .info, table: name, chain: chain.name,
                            message: "\(name) \(chain.name) is not a chain istio-iptables creates for this configuration (left over from an earlier one?).",
                            fix: "Remove it, or reinstall the rules with the current configuration.", obligation: id))
                        drift += 1
                    } else if graph.isUnreachable(chain.name), !expectedGraph.isUnreachable(chain.name) {
                        out.findings.append(ctx.structural(.ruleDrift, .info, table: name, chain: chain.name,
                            message: "\(name) \(chain.name) is not reached from any hook chain.", fix: Fix.reinstall, obligation: id))
                        drift += 1
                    }
                }
                for chain in expected.chains where actual.chain(chain.name) == nil {
                    out.findings.append(ctx.structural(.ruleDrift, .info, table: name, chain: chain.name,
                        message: "\(name) \(chain.name) is missing; istio-iptables creates it for this configuration.", fix: Fix.reinstall, obligation: id))
                    drift += 1
                }
                for chain in actual.chains {
                    // Other components' chains (kube-proxy, a CNI plugin) are not Istio's business unless they
                    // pre-empt it, which the foreign-rule checks report; built-in chains Istio leaves alone likewise.
                    guard let exp = expected.chain(chain.name) else { continue }
                    let (extra, missing) = diff(actual: chain.rules, expected: exp.rules, family: ctx.family)
                    var homes: [Rule: Int] = [:]
                    if !extra.isEmpty {
                        for (k, r) in exp.rules.enumerated().reversed() { homes[r.normalized] = k }
                    }
                    for i in extra where !cited.contains(Cited(family: ctx.family, table: name, chain: chain.name, rule: i + 1)) {
                        let home = homes[chain.rules[i].normalized]
                        let message = home.map { "\(name) \(chain.name)#\(i + 1) is out of place: istio-iptables installs it as rule \($0 + 1) of the chain." }
                            ?? "\(name) \(chain.name)#\(i + 1) is not a rule istio-iptables installs for this configuration."
                        out.findings.append(ctx.structural(.ruleDrift, .info, table: name, chain: chain.name, rule: i + 1,
                            message: message, fix: home == nil ? nil : Fix.reinstall, obligation: id))
                        drift += 1
                    }
                    for r in missing where !citedChains.contains(Cited(family: ctx.family, table: name, chain: chain.name)) {
                        out.findings.append(ctx.structural(.ruleDrift, .info, table: name, chain: chain.name,
                            // A native rule is named as nft prints it, as findings name live rules.
                            message: "istio-iptables installs `\(r.native?.text ?? SaveSyntax.render(r, in: chain.name, family: ctx.family))`, which is absent.",
                            fix: Fix.reinstall, obligation: id))
                        drift += 1
                    }
                }
            }
            if drift == 0, out.findings.allSatisfy({ $0.family != ctx.family }) {
                out.proven.append("\(ctx.familyName): the rules are exactly what istio-iptables \(ctx.version) installs for this configuration")
            }
        }
        return out
    }

    /// Rules of `actual` not in `expected` (indices) and rules of `expected` not in `actual`, by longest common
    /// subsequence over normalized rules; consecutive RETURNs are sorted first, since their order is immaterial.
    ///
    /// The common head and tail are matched first, so the table of the subsequence covers only the part that
    /// differs; when even that part is huge (a flag listing 100,000 ports, reordered), rules are matched as
    /// multisets instead, in linear time: what is extra or missing is still exact, only moves go unreported.
    static func diff(actual: [Rule], expected: [Rule], family: Family) -> (extra: [Int], missing: [Rule]) {
        func canonical(_ rules: [Rule]) -> [(Int, Rule)] {
            var out: [(Int, Rule)] = []
            var run: [(Int, Rule)] = []
            func flush() {
                out += run.map { ($0, $1, SaveSyntax.ruleSpec($1, family: family)) }.sorted { $0.2 < $1.2 }.map { ($0.0, $0.1) }
                run = []
            }
            for (i, r) in rules.enumerated() {
                let n = r.normalized
                if n.target == .return { run.append((i, n)) } else { flush(); out.append((i, n)) }
            }
            flush()
            return out
        }
        let a = canonical(actual), e = canonical(expected)
        // Equal rules get one number, so everything below compares integers.
        var numbers: [Rule: Int] = [:]
        func number(_ r: Rule) -> Int {
            if let n = numbers[r] { return n }
            numbers[r] = numbers.count
            return numbers.count - 1
        }
        let an = a.map { number($0.1) }, en = e.map { number($0.1) }
        var head = 0
        while head < an.count, head < en.count, an[head] == en[head] { head += 1 }
        var endA = an.count, endE = en.count
        while endA > head, endE > head, an[endA - 1] == en[endE - 1] { endA -= 1; endE -= 1 }
        var extra: [Int] = [], missing: [Rule] = []
        let rows = endA - head, columns = endE - head
        if rows * columns > Self.maxDiffCells {
            var wanted: [Int: Int] = [:]
            for j in head..<endE { wanted[en[j], default: 0] += 1 }
            for i in head..<endA {
                if let left = wanted[an[i]], left > 0 { wanted[an[i]] = left - 1 } else { extra.append(a[i].0) }
            }
            for j in head..<endE where wanted[en[j], default: 0] > 0 {
                wanted[en[j], default: 0] -= 1
                missing.append(expected[e[j].0])
            }
            return (extra.sorted(), missing)
        }
        var lcs = Array(repeating: Array(repeating: 0, count: columns + 1), count: rows + 1)
        for i in stride(from: rows - 1, through: 0, by: -1) {
            for j in stride(from: columns - 1, through: 0, by: -1) {
                lcs[i][j] = an[head + i] == en[head + j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
            }
        }
        var i = 0, j = 0
        while i < rows || j < columns {
            if i < rows, j < columns, an[head + i] == en[head + j] {
                i += 1; j += 1
            } else if j < columns, i == rows || lcs[i][j + 1] >= lcs[i + 1][j] {
                missing.append(expected[e[head + j].0]); j += 1
            } else {
                extra.append(a[head + i].0); i += 1
            }
        }
        return (extra.sorted(), missing)
    }

    /// The largest subsequence table `diff` builds (4M cells, 32 MB), far above a pod's chains.
    static let maxDiffCells = 1 << 22
}

/// §13.24: Istio's rules live in one backend per family.
enum OneBackend: Obligation {
    static let description = ObligationDescription(
        id: "one-backend", title: "Istio's rules live in one backend per family", invariant: 24,
        quantifiesOver: ["each family's backends found holding rules (live reads only)"],
        kinds: [.backendSplit], examples: [])

    static func check(_ run: VerificationRun) -> CheckOutput {
        let populated = run.ruleset.populatedBackends.filter { !$0.value.allSatisfy { $0 == .text } }
        guard !populated.isEmpty else { return .notApplicable("the rules were read from a saved dump; backends were not probed") }
        var out = CheckOutput()
        for (family, backends) in populated.sorted(by: { $0.key < $1.key }) {
            let name = family == .ipv4 ? "IPv4" : "IPv6"
            let read = run.ruleset.backends[family]
            // Rules in the backend not read that can only let a packet through or drop it (filter and security
            // tables, whose chains hook at priority 0 and 50, after nat's: OUTPUT after the redirect, INPUT after
            // routing, FORWARD) leave capture as verified. A mark, a connmark, a queue or anything not decoded
            // could change what a later packet meets, so such a split stays an error. Chains iptables-nft-save
            // cannot print are read as native tables and walked, whichever backend is read.
            let others = backends.filter { $0 != read }
            let otherTables = others.map { run.ruleset.populatedTables[family]?[$0] ?? [] }
            if Set(backends).count > 1, let read, others.count == backends.count - 1,
               otherTables.allSatisfy({ !$0.isEmpty && $0.allSatisfy(Self.onlyPassesOrDrops) }) {
                let where_ = zip(others, otherTables).map { "\($0.0.rawValue) (\($0.1.map(\.name.rawValue).joined(separator: ", ")) only)" }
                out.findings.append(Finding(kind: .backendSplit, severity: .warning, family: family,
                    message: "\(name) rules also exist in \(where_.joined(separator: " and ")) beside Istio's in \(read.rawValue): "
                        + "they only accept, drop or reject, after nat, so capture is as verified, but the kernel applies "
                        + "both backends and iptaudit verified \(read.rawValue) alone.",
                    fix: "Keep the pod's rules in one backend: move those rules into \(read.rawValue), or remove them.",
                    obligation: description.id))
            } else if Set(backends).count > 1 {
                out.findings.append(Finding(kind: .backendSplit, severity: .error, family: family,
                    message: "\(name) rules exist in \(backends.map(\.rawValue).joined(separator: " and ")) at once: the kernel evaluates both, "
                        + "in an order no one chose, and a reader of one backend misses the other.",
                    fix: "Remove the rules from one backend (iptables-legacy -F / iptables-nft -F in the pod's namespace) and reinstall Istio's.",
                    obligation: description.id))
            } else if let read, let only = backends.first, read != only, read != .text {
                out.findings.append(Finding(kind: .backendSplit, severity: .error, family: family,
                    message: "\(name) rules live in \(only.rawValue) but were read from \(read.rawValue): the verified tables are not the ones in force.",
                    fix: "Read the \(only.rawValue) backend (iptaudit picks it when given --backend auto).", obligation: description.id))
            } else {
                out.proven.append("\(name): rules only in \(backends.first?.rawValue ?? "no backend")")
            }
        }
        return out
    }
}

extension OneBackend {
    /// A filter or security table whose rules only pass, drop or reject a packet (or jump between its own chains,
    /// or log): nothing there rewrites, marks, queues or untracks.
    static func onlyPassesOrDrops(_ table: Table) -> Bool {
        guard [.filter, .security].contains(table.name) else { return false }
        return table.chains.allSatisfy { chain in
            chain.rules.allSatisfy { rule in
                switch rule.target {
                case .accept, .drop, .return, .jump, .goto, .continue, .reject, .log, .nflog: true
                default: false
                }
            }
        }
    }
}

/// §13.18: both families are captured the same way.
enum FamilyParity: Obligation {
    static let description = ObligationDescription(
        id: "family-parity", title: "IPv4 and IPv6 are captured alike", invariant: 18,
        quantifiesOver: ["each obligation's result in IPv4 against IPv6", "the application traffic of a configured family that has no rules"],
        kinds: [.familyAsymmetry],
        examples: [
            ExampleRules.example("dual-stack pod", ExampleRules.dualStackPod, .passes),
            ExampleRules.example("IPv6 REDIRECT removed", ExampleRules.dualStackPod, .fails(.familyAsymmetry, .error), ipv6: {
                $0.removingLine("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001")
            }),
            ExampleRules.example("IPv6 rules missing", ExampleRules.dualStackPod, .fails(.familyAsymmetry, .error), ipv6: { _ in "" }),
        ])

    static func check(_ run: VerificationRun) -> CheckOutput {
        var out = CheckOutput()
        let id = description.id
        for (family, _) in run.skipped {
            let ctx = FamilyContext(family: family, config: run.config, tables: run.ruleset.tables.filter { $0.family == family },
                                    options: run.options, policyRouting: run.ruleset.policyRouting,
                                    layout: run.config.nativeNftables ? .nativeNftables : .iptables)
            let other = family == .ipv4 ? "IPv6" : "IPv4"
            let cls = ctx.outboundCaptureClass.isEmpty ? PacketSet([ctx.application(ctx.localNew).with(.l4Protocol, ctx.tcp)]) : ctx.outboundCaptureClass
            let found = ctx.check(cls, .localOutput, obligation: id) { o in
                guard o.verdict.capturePort == nil else { return nil }
                return Violation(kind: .familyAsymmetry, severity: .error,
                                 problem: "is not captured: the pod has \(ctx.familyName) but only \(other) has Istio's rules, so all its \(ctx.familyName) traffic bypasses the mesh",
                                 fix: "Istio adds ip6tables rules only when it detects an IPv6 pod address (ISTIO_DUAL_STACK for dual-stack); reinstall the rules.")
            }
            out.findings += found.isEmpty ? [ctx.structural(.familyAsymmetry, .error, table: nil, chain: nil,
                message: "\(ctx.familyName) has no Istio rules while \(other) has them.", fix: Fix.reinstall, obligation: id)] : found
        }
        let configured = Set(run.config.families)
        for ctx in run.checked where !configured.contains(ctx.family) {
            out.findings.append(ctx.structural(.familyAsymmetry, .warning, table: nil, chain: nil,
                message: "\(ctx.familyName) holds Istio rules but the configuration says the pod is \(configured.contains(.ipv6) ? "IPv6" : "IPv4")-only; "
                    + "the configuration's IPv6 detection may be wrong.",
                fix: "Pass the pod's addresses (or ISTIO_DUAL_STACK) so the configuration matches.", obligation: id))
        }
        if run.checked.count == 2 {
            for obligation in Obligations.all {
                let oid = obligation.description.id
                guard oid != id, let result = run.results[oid], result.notApplicable == nil else { continue }
                let byFamily = Dictionary(grouping: result.findings.filter { $0.severity == .error }, by: \.family)
                guard byFamily.count == 1, let (bad, findings) = byFamily.first, let first = findings.first else { continue }
                let good = bad == .ipv4 ? "IPv6" : "IPv4"
                // The obligation must have applied to the passing family too.
                let goodFamily: Family = bad == .ipv4 ? .ipv6 : .ipv4
                if let perFamily = run.perFamily[oid], perFamily[goodFamily]?.notApplicable != nil || perFamily[goodFamily] == nil { continue }
                var f = first
                f.kind = .familyAsymmetry
                f.obligation = id
                f.message = "\(bad == .ipv4 ? "IPv4" : "IPv6") fails \(oid) while \(good) passes it: " + first.message
                f.fix = first.fix
                out.findings.append(f)
            }
        }
        if out.findings.isEmpty {
            if run.checked.count == 2 {
                out.proven.append("IPv4 and IPv6 pass and fail the same obligations")
            } else {
                return .notApplicable("only \(run.checked.first?.familyName ?? "no family") is configured and present")
            }
        }
        return out
    }
}

extension FamilyContext {
    /// How many times Istio's whole rule set sits in the tables, when it is more than once: every chain the
    /// configuration gives rules holds exactly those rules (counters and comments aside), repeated the same number
    /// of times, and no chain holds anything else.
    var installCount: Int? {
        var times: Int?
        for expectedTable in expected {
            guard let actualTable = table(expectedTable.name) else { return nil }
            for chain in expectedTable.chains where !chain.rules.isEmpty {
                let want = chain.rules.map(\.normalized)
                let got = actualTable.chain(chain.name)?.rules.map(\.normalized) ?? []
                guard got.count % want.count == 0 else { return nil }
                let k = got.count / want.count
                guard k >= 2, times == nil || times == k else { return nil }
                for i in 0..<k where Array(got[(i * want.count)..<((i + 1) * want.count)]) != want { return nil }
                times = k
            }
        }
        return times
    }
}
