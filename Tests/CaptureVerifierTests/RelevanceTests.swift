@testable import CaptureVerifier
import CorpusSupport
import IstioCapture
import NetfilterModel
import Testing

/// A check that declares which outcomes it can judge lets the walk drop the other branches early. What comes back
/// must be exactly the admitted outcomes of the full walk, in the same order and with the same packets (the
/// findings, witnesses included, are then those of the full walk), and on a node-sized nat table most branches
/// must be dropped before they fan out into kube-proxy's per-service chains.
@Suite("Relevance")
struct RelevanceTests {
    func same(_ a: [Outcome], _ b: [Outcome]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { x, y in
            x.packets == y.packets && x.verdict == y.verdict && x.path == y.path && x.ctZone == y.ctZone && x.assumptions == y.assumptions
        }
    }

    /// Each relevance a check can declare, for the chains these tables have.
    func relevances(_ tables: [Table]) -> [Relevance] {
        func chains(_ keep: (String) -> Bool) -> Set<TableChain> {
            Set(tables.flatMap { t in t.chains.filter { keep($0.name.rawValue.uppercased()) }.map { TableChain(table: t.name, chain: $0.name) } })
        }
        let redirects = chains { $0.contains("REDIRECT") || $0.contains("TPROXY") }
        let outputs = chains { $0.contains("ISTIO") && $0.contains("OUTPUT") }
        let inbound = chains { $0.contains("INBOUND") || $0.contains("PREROUTING") }
        return [.captured, .entering(redirects), .entering(inbound), .notEntering(outputs), .notEntering(inbound)]
    }

    func expectAdmittedOutcomes(_ tables: [Table], _ family: Family, _ what: String) {
        let space = PacketSpace(family: family, tables: tables)
        let evaluator = SymbolicEvaluator(space: space, tables: tables)
        var local = space.universe
        local[.inInterface] = space.noInterface(.inInterface)
        var inbound = space.universe
        inbound[.outInterface] = space.noInterface(.outInterface)
        let runs: [(PacketBox, Pipeline)] = [(local, .localOutput), (local, .localOutputThenLoopback), (inbound, .inbound),
                                             (space.universe, .single(.nat, .output)), (space.universe, .single(.mangle, .prerouting))]
        for (box, pipeline) in runs {
            let all = evaluator.evaluate(PacketSet([box]), pipeline: pipeline)
            for relevance in relevances(tables) {
                let admitted = evaluator.evaluate(PacketSet([box]), pipeline: pipeline, relevance: relevance)
                let expected = all.filter(relevance.admits)
                let equal = same(admitted, expected)
                #expect(equal, "\(what) \(family), \(pipeline), \(relevance): \(admitted.count) outcomes, \(expected.count) expected")
            }
        }
    }

    @Test("every corpus rule set: the relevant walk gives exactly the full walk's admitted outcomes",
          arguments: Corpus.offlineCases)
    func corpus(_ c: CorpusCase) throws {
        let rules = try c.ruleset()
        #expect(!rules.tables.isEmpty, "\(c.testDescription): no rules to walk")
        for (family, tables) in tablesByFamily(rules) { expectAdmittedOutcomes(tables, family, c.testDescription) }
    }

    @Test("random chains with jumps, gotos, RETURNs, marks and unknown matches (fixed seeds)", arguments: [1, 2, 3] as [UInt64])
    func random(_ seed: UInt64) throws {
        let text = ChainIndexTests().randomTable(seed: seed, count: 200)
        expectAdmittedOutcomes(try tables(text, .ipv4), .ipv4, "seed \(seed)")
    }

    /// Istio's default sidecar rules with `services` kube-proxy services after them (three endpoints each, the
    /// masquerade marks and the random endpoint choice that make every service a handful of branches).
    func podWithKubeProxy(services: Int) throws -> [Table] {
        let pod = try #require(Corpus.named("master/cni-sidecar-iptables/basic")?.liveSave(.ipv4))
        var kube = [":KUBE-SERVICES - [0:0]", ":KUBE-MARK-MASQ - [0:0]", "-A OUTPUT -j KUBE-SERVICES", "-A PREROUTING -j KUBE-SERVICES",
                    "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"]
        for s in 0..<services {
            let svc = "KUBE-SVC-\(s)", vip = "10.96.\(s / 250).\(s % 250 + 1)"
            kube += [":\(svc) - [0:0]", "-A KUBE-SERVICES -d \(vip)/32 -p tcp -m tcp --dport 80 -j \(svc)",
                     "-A \(svc) ! -s 10.244.0.0/16 -d \(vip)/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ"]
            for e in 0..<3 {
                let sep = "KUBE-SEP-\(s)-\(e)", ip = "10.244.\(s / 250).\(s % 250 * 3 + e + 1)"
                kube += [":\(sep) - [0:0]",
                         "-A \(svc)" + (e < 2 ? " -m statistic --mode random --probability 0.33333333349" : "") + " -j \(sep)",
                         "-A \(sep) -s \(ip)/32 -j KUBE-MARK-MASQ", "-A \(sep) -p tcp -m tcp -j DNAT --to-destination \(ip):8080"]
            }
        }
        let text = pod.replacingOccurrences(of: "*nat\n", with: "*nat\n" + kube.filter { $0.hasPrefix(":") }.joined(separator: "\n") + "\n")
            .replacingOccurrences(of: "COMMIT\n", with: kube.filter { $0.hasPrefix("-A") }.joined(separator: "\n") + "\nCOMMIT\n")
        return try tables(text, .ipv4)
    }

    @Test("kube-proxy's chains: branches that can no longer be judged are dropped before they fan out")
    func kubeProxyBranchesDropped() throws {
        let tables = try podWithKubeProxy(services: 60)
        let space = PacketSpace(family: .ipv4, tables: tables)
        let evaluator = SymbolicEvaluator(space: space, tables: tables)
        // New connections from this pod, unmarked, as a check's class is.
        var local = space.universe
        local[.inInterface] = space.noInterface(.inInterface)
        local[.outInterface] = space.noInterface(.outInterface).complement
        local[.ctState] = space.atoms(states: [.new])
        local[.mark] = space.atoms(.mark, marks: { $0 == 0 })
        local[.connmark] = space.atoms(.connmark, marks: { $0 == 0 })
        var proxy = local
        proxy[.uid] = space.atoms(ids: [1337], field: .uid)
        let set = PacketSet([proxy])
        // The proxy's own traffic is returned by ISTIO_OUTPUT and then fans out through every service.
        let full = evaluator.walker.walk(set, pipeline: .localOutput)
        let intoEndpoints = full.filter { $0.1.path.contains { $0.chain.rawValue.hasPrefix("KUBE-SEP-") } }.count
        #expect(full.count > 60 * 6, "the full walk follows every service's branches (\(full.count))")
        #expect(intoEndpoints > 60 * 3)
        // A check that judges only captures: no capture is reachable from KUBE-SERVICES, so nothing enters it,
        // and (on a walker that has not walked there before) kube-proxy's chains are never even compiled.
        let fresh = SymbolicEvaluator(space: space, tables: tables)
        let judged = fresh.evaluate(set, pipeline: .localOutput, relevance: .captured)
        let onlySelfCalls = judged.allSatisfy { $0.verdict.redirects(to: 15006) }
        #expect(onlySelfCalls, "the proxy's own traffic is captured only when it calls its own pod over lo")
        #expect(fresh.walker.compiled.isCompiled(.nat, "ISTIO_OUTPUT"))
        let compiledKube = ["KUBE-SERVICES", "KUBE-SVC-0", "KUBE-SEP-0-0", "KUBE-MARK-MASQ"].filter { fresh.walker.compiled.isCompiled(.nat, ChainName(rawValue: $0)) }
        #expect(compiledKube.isEmpty)
        #expect(evaluator.walker.compiled.isCompiled(.nat, "KUBE-SEP-0-0"), "the full walk compiled what it walked")
        let captured = evaluator.walker.walk(set, pipeline: .localOutput, relevance: .captured)
        let intoKube = captured.filter { $0.1.path.contains { $0.chain.rawValue.hasPrefix("KUBE-") } }.count
        #expect(intoKube == 0)
        #expect(captured.count < 10, "\(captured.count) branches kept")
        // A check that passes whatever enters ISTIO_OUTPUT: every new connection does, first, so nothing is kept.
        let hook = Relevance.notEntering([TableChain(table: .nat, chain: "ISTIO_OUTPUT")])
        #expect(evaluator.walker.walk(set, pipeline: .localOutput, relevance: hook).count == 0)
        // One that judges only what enters ISTIO_REDIRECT keeps none of the proxy's branches into kube-proxy's chains
        // (its connections to itself over lo, redirected to 15006, are followed: ISTIO_REDIRECT is still ahead of them).
        let redirect = Relevance.entering([TableChain(table: .nat, chain: "ISTIO_REDIRECT")])
        let kept = evaluator.walker.walk(set, pipeline: .localOutput, relevance: redirect)
        #expect(kept.count < 5 && kept.allSatisfy { !$0.1.path.contains { $0.chain.rawValue.hasPrefix("KUBE-") } })
        #expect(evaluator.evaluate(set, pipeline: .localOutput, relevance: redirect).isEmpty)
        // ... and the application's TCP, redirected before kube-proxy's chains, whole.
        var app = local
        app[.uid] = space.atoms(ids: [1337], field: .uid).complement
        app[.gid] = space.atoms(ids: [1337], field: .gid).complement
        app[.l4Protocol] = space.atoms(protocols: [ProtocolMatch.tcp])
        app[.outInterface] = space.atoms(.outInterface, interfaceNamed: "lo").complement & local[.outInterface]
        let redirected = evaluator.evaluate(PacketSet([app]), pipeline: .localOutput, relevance: redirect)
        let allTo15001 = !redirected.isEmpty && redirected.allSatisfy { $0.verdict.redirects(to: 15001) }
        #expect(allTo15001, "\(redirected.map(\.verdict))")
        let equal = same(redirected, evaluator.evaluate(PacketSet([app]), pipeline: .localOutput).filter(redirect.admits))
        #expect(equal)
    }

    /// Every finding, as a report shows it (to say where two reports differ): kind, severity, place, message,
    /// witness and path.
    func findings(_ report: VerificationReport) -> [String] {
        report.obligations.flatMap { r in
            r.findings.map { f in
                "\(r.id) [\(f.severity) \(f.kind) \(f.family)] \(f.location): \(f.message) | \(f.witness?.text ?? "-") | "
                    + f.path.map(\.description).joined(separator: " > ")
            } + r.proven.map { "\(r.id) proven: \($0)" }
        }
    }

    func expectSameFindings(_ rules: Ruleset, _ config: CaptureConfiguration, _ what: String,
                            groups: [String: UInt32] = [:]) {
        var every = VerifierOptions(groupIDs: groups)
        every.followsEveryBranch = true
        let prunedReport = verify(rules, configuration: config, options: VerifierOptions(groupIDs: groups))
        let fullReport = verify(rules, configuration: config, options: every)
        let same = prunedReport == fullReport
        let (pruned, full) = (findings(prunedReport), findings(fullReport))
        let firstDifference: String = zip(pruned, full).first { $0 != $1 }.map { a, b in a + "\n  vs " + b }
            ?? "(in the walks, or one list is longer)"
        #expect(same, "\(what): the reports differ; \(pruned.count) findings pruned, \(full.count) following every branch; \(firstDifference)")
    }

    @Test("each obligation's declared examples: the same findings as walking every branch with the judges unwrapped",
          arguments: DeclaredExample.all)
    func declaredExamples(_ e: DeclaredExample) throws {
        expectSameFindings(try ruleset(ipv4: e.example.ipv4, ipv6: e.example.ipv6), e.example.configuration, e.testDescription)
    }

    @Test("every corpus rule set: the same findings as walking every branch with the judges unwrapped",
          arguments: Corpus.offlineCases)
    func corpusFindings(_ c: CorpusCase) throws {
        let rules = try c.ruleset()
        #expect(!rules.tables.isEmpty, "\(c.testDescription): no rules to judge")
        expectSameFindings(rules, try c.configuration(), c.testDescription, groups: Corpus.groupIDs)
    }

    /// Rules around Istio's that only a walk through the call stack gets right: a chain ahead of Istio's jump that
    /// gotos and returns through deep chains, a capture reached only after those RETURNs, a foreign REDIRECT deep
    /// in a chain that also DNATs, and kube-proxy-style services before and after Istio's jump.
    @Test("deep RETURNs, gotos and captures behind them: the same findings as walking every branch",
          arguments: ["before", "after"])
    func deepChains(_ place: String) throws {
        let pod = try #require(Corpus.named("master/cni-sidecar-iptables/basic")?.liveSave(.ipv4))
        let chains = ["DEEP1", "DEEP2", "GT", "SVC", "SEP"]
        var rules = ["-A DEEP1 -p udp -j RETURN", "-A DEEP1 -j DEEP2", "-A DEEP1 -d 10.96.0.10/32 -j SVC",
                     "-A DEEP2 -m owner --uid-owner 1337 -g GT", "-A DEEP2 -p tcp -m tcp --dport 9999 -j REDIRECT --to-ports 15001",
                     "-A GT -d 10.0.0.0/8 -j RETURN", "-A GT -p tcp -m tcp --dport 7777 -j ISTIO_REDIRECT", "-A GT -j RETURN",
                     "-A SVC -m statistic --mode random --probability 0.5 -j SEP", "-A SVC -p tcp -j DNAT --to-destination 10.244.0.7:80",
                     "-A SEP -s 10.244.0.7/32 -j RETURN", "-A SEP -p tcp -j DNAT --to-destination 10.244.0.8:80"]
        rules.append(place == "before" ? "-I OUTPUT 1 -j DEEP1" : "-A OUTPUT -j DEEP1")
        rules.append(place == "before" ? "-I PREROUTING 1 -j DEEP1" : "-A PREROUTING -j DEEP1")
        var text = pod.replacingOccurrences(of: "*nat\n", with: "*nat\n" + chains.map { ":\($0) - [0:0]" }.joined(separator: "\n") + "\n")
        for r in rules where r.hasPrefix("-I ") {
            // Insert at the top of the chain: right after its declaration block, before its first rule.
            let chain = r.split(separator: " ")[1]
            let first = try #require(text.range(of: "-A \(chain) "))
            text.insert(contentsOf: "-A " + r.dropFirst(3).replacingOccurrences(of: " 1 ", with: " ") + "\n", at: first.lowerBound)
        }
        text = text.replacingOccurrences(of: "COMMIT\n", with: rules.filter { $0.hasPrefix("-A ") }.joined(separator: "\n") + "\nCOMMIT\n")
        let rulesetValue = try ruleset(ipv4: text)
        let config = try #require(Corpus.named("master/cni-sidecar-iptables/basic")).configuration()
        expectSameFindings(rulesetValue, config, "DEEP1 \(place) Istio's jumps")
        // The rules make findings to compare, not only passes.
        let report = verify(rulesetValue, configuration: config)
        #expect(report.errors.count > 0, "the deep REDIRECT and the goto into ISTIO_REDIRECT are reported")
    }
}

