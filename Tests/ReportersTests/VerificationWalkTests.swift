import CaptureVerifier
import CorpusSupport
import Foundation
import IstioCapture
import NetfilterModel
import Reporters
import RuleReaders
import Testing
import TestSupport

/// The walks of `verify`'s text report: per family, the outbound and inbound path through the real rules, each
/// hop printed exactly as `show --format list` (`iptables -L -v -n --line-numbers`) lists that rule, and the
/// finding whose witness breaks a walk marked at the hop where it does.
@Suite struct VerificationWalkTests {
    static func example(_ name: String, editing edit: (String) -> String = { $0 }) throws -> (VerificationReport, Ruleset) {
        let repo = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        let text = edit(try String(contentsOf: repo.appendingPathComponent("examples/\(name).save"), encoding: .utf8))
        let pod = try String(contentsOf: repo.appendingPathComponent("examples/pod.yaml"), encoding: .utf8)
        let ruleset = Ruleset(tables: try SaveTextParser(fileName: name).parse(text), backends: [.ipv4: .text])
        return (verify(ruleset, configuration: try PodManifest(yaml: pod).captureConfiguration()), ruleset)
    }

    static func corpus(_ id: String) throws -> (VerificationReport, Ruleset, CaptureConfiguration) {
        let c = try #require(Corpus.named(id))
        let ruleset = try c.ruleset()
        let config = try c.configuration()
        return (verify(ruleset, configuration: config, options: VerifierOptions(groupIDs: Corpus.groupIDs)), ruleset, config)
    }

    /// A rule's line in `show --format list`'s listing of its table, trailing padding removed.
    static func listed(_ ruleset: Ruleset, _ family: Family, _ table: TableName, _ chain: ChainName, _ number: Int) throws -> String {
        let t = try #require(ruleset.table(table, family: family))
        let lines = RulesetListing.render(t).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = try #require(lines.firstIndex { $0.hasPrefix("Chain \(chain.rawValue) (") })
        // The chain's line, the column header, then its rules.
        return lines[header + 1 + number].replacing(/\ +$/, with: "")
    }

    /// The lines of one walk in the rendered report: its title, then one line per hop, then the `→` line.
    static func block(_ text: String, _ family: Family, _ direction: CaptureWalk.Direction) throws -> [String] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let title = "\(family == .ipv4 ? "IPv4" : "IPv6") \(direction.rawValue): "
        let start = try #require(lines.firstIndex { $0.hasPrefix(title) }, "no \(title) walk in:\n\(text)")
        let end = try #require(lines[start...].firstIndex { $0.hasPrefix("  → ") })
        return Array(lines[start...end])
    }

    /// Each hop's line is its place and the listing's own line for that rule; the walk ends with its disposition.
    static func expectHopsListed(_ walk: CaptureWalk, in text: String, ruleset: Ruleset) throws -> [String] {
        let lines = try block(text, walk.family, walk.direction)
        #expect(lines.count == walk.hops.count + 2)
        for (hop, line) in zip(walk.hops, lines.dropFirst()) {
            let place = "  \(hop.table) \(hop.chain) "
            #expect(line.hasPrefix(place), "\(line)")
            let rest = line.dropFirst(place.count).drop { $0 == " " }
            let listing = try listed(ruleset, walk.family, hop.table, hop.chain, hop.ruleNumber)
            #expect(rest.split(separator: "   ◀", maxSplits: 1).first.map(String.init) == listing)
        }
        #expect(lines.last == "  → \(walk.disposition.action): \(walk.disposition.summary)"
                || lines.last?.hasPrefix("  → \(walk.end.map { "\($0.table) \($0.chain) policy" } ?? "-")") == true)
        return lines
    }

    /// The hops the packet took, from the hook chain on, each one entered by the one before (a jump, or the same chain).
    static func taken(_ walk: CaptureWalk) -> [CaptureWalk.Hop] {
        let hops = walk.hops.filter(\.taken)
        for (a, b) in zip(hops, hops.dropFirst()) where a.table == b.table {
            #expect(b.chain == a.chain || a.rule.target.chainReference == b.chain, "\(a.chain) → \(b.chain)")
        }
        return hops
    }

    /// The rule where the proxy's own packet leaves the outbound walk: an owner match on a proxy UID, RETURN.
    static func expectOwnerExemption(_ walk: CaptureWalk, _ text: String, uid: UInt32) throws {
        let exempt = try #require(walk.hops.first { !$0.taken })
        #expect(exempt.chain == ChainName.istioOutput && exempt.rule.target == .return)
        #expect(exempt.rule.matches.contains { if case .owner(let o) = $0, let u = o.uid { !u.inverted && u.range == uid...uid } else { false } })
        let line = try #require(try block(text, walk.family, .outbound).first { $0.contains("◀ not taken;") })
        #expect(line.hasSuffix("◀ not taken; \(exempt.exempt?.who ?? "?"): RETURN"))
        #expect(line.contains("owner UID match \(uid)"))
        // Before the rule that takes the application's packet on.
        let index = try #require(walk.hops.firstIndex(of: exempt))
        let next = try #require(walk.hops.dropFirst(index + 1).first)
        #expect(next.chain == exempt.chain && next.ruleNumber > exempt.ruleNumber)
    }

    @Test func healthyPodShowsTheArticlesTwoWalks() throws {
        let (report, ruleset) = try Self.example("healthy")
        let config = try PodManifest(yaml: try String(contentsOf: Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples/pod.yaml"), encoding: .utf8)).captureConfiguration()
        let text = VerificationText.render(report, ruleset: ruleset, source: "healthy")
        #expect(report.walks.map { "\($0.family) \($0.direction)" } == ["ipv4 outbound", "ipv4 inbound"])
        let out = try #require(report.walks.first { $0.direction == .outbound })
        let into = try #require(report.walks.first { $0.direction == .inbound })
        _ = try Self.expectHopsListed(out, in: text, ruleset: ruleset)
        _ = try Self.expectHopsListed(into, in: text, ruleset: ruleset)

        #expect(Self.taken(out).map(\.chain) == ["OUTPUT", ChainName.istioOutput, ChainName.istioRedirect])
        #expect(Self.taken(out).allSatisfy { $0.table == .nat })
        #expect(Self.taken(out).last?.rule.target == .redirect(PortRewriteTarget(ports: config.proxyPort...config.proxyPort)))
        #expect(out.verdict.redirects(to: config.proxyPort))
        try Self.expectOwnerExemption(out, text, uid: 1337)

        #expect(Self.taken(into).map(\.chain) == ["PREROUTING", ChainName.istioInbound, ChainName.istioInRedirect])
        #expect(into.verdict.redirects(to: config.inboundCapturePort))
        #expect(!text.contains("◀ ["), "no finding marks a healthy walk")
    }

    /// On every sidecar dump of the corpus (both families where Istio wrote IPv6 rules), each hop of each walk prints
    /// exactly as the listing prints its rule, each taken hop is entered by the one before, and a clean report's
    /// walks are not marked.
    @Test(arguments: Corpus.cases)
    func everyHopIsTheListingsLine(_ c: CorpusCase) throws {
        let (report, ruleset, _) = try Self.corpus(c.testDescription)
        let text = VerificationText.render(report, ruleset: ruleset, source: c.name)
        for walk in report.walks {
            let lines = try Self.expectHopsListed(walk, in: text, ruleset: ruleset)
            _ = Self.taken(walk)
            if report.errors.isEmpty { #expect(lines.allSatisfy { !$0.contains("◀ [") }, "\(lines)") }
        }
    }

    /// The foreign RETURN in nat OUTPUT: the walk follows the finding's witness and stops at that rule, marked.
    @Test func brokenPodWalkStopsAtTheForeignReturn() throws {
        let (report, ruleset) = try Self.example("broken")
        let text = VerificationText.render(report, ruleset: ruleset, source: "broken")
        let number = try #require(report.findings.firstIndex { $0.kind == .foreignRule }) + 1
        let finding = report.findings[number - 1]
        let out = try #require(report.walks.first { $0.direction == .outbound })
        #expect(out.packet == finding.witness?.packet)
        let lines = try Self.expectHopsListed(out, in: text, ruleset: ruleset)
        let last = try #require(out.hops.last)
        #expect(last.table == finding.table && last.chain == finding.chain && last.ruleNumber == finding.ruleNumber)
        #expect(lines[lines.count - 2].hasSuffix("◀ [\(number)] foreign-rule"))
        // The proxy's packet is returned by the same rule: nothing to say about an exemption where nothing is captured.
        #expect(out.hops.allSatisfy { $0.exempt == nil })
        #expect(lines[0].hasSuffix("(the witness of [\(number)])"))
        #expect(lines.last?.hasPrefix("  → nat OUTPUT policy ACCEPT: ") == true)
        // The inbound walk is unharmed and carries no mark.
        let into = try #require(report.walks.first { $0.direction == .inbound })
        #expect(try Self.expectHopsListed(into, in: text, ruleset: ruleset).allSatisfy { !$0.contains("◀ [") })
    }

    /// `--format json` carries the same walks: each hop's rule as iptables-save prints it (the finding's own text
    /// for the rule it marks), in the documented schema (checked by VerificationReportTests).
    @Test func jsonCarriesTheWalks() throws {
        let (report, ruleset) = try Self.example("broken")
        let json = VerificationJSON.render(report, ruleset: ruleset, source: "broken")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let walks = try #require(doc["walks"] as? [[String: Any]])
        #expect(walks.count == report.walks.count)
        for (w, walk) in zip(walks, report.walks) {
            #expect(w["direction"] as? String == walk.direction.rawValue && w["family"] as? String == walk.family.rawValue)
            let hops = try #require(w["hops"] as? [[String: Any]])
            #expect(hops.map { $0["ruleNumber"] as? Int } == walk.hops.map(\.ruleNumber))
            #expect(hops.map { $0["chain"] as? String } == walk.hops.map(\.chain.rawValue))
        }
        let foreign = try #require(report.findings.first { $0.kind == .foreignRule })
        let out = try #require(walks.first { $0["direction"] as? String == "outbound" })
        let last = try #require((out["hops"] as? [[String: Any]])?.last)
        #expect(last["ruleText"] as? String == foreign.ruleText)
        #expect(out["verdict"] as? String == foreign.witness?.verdict.description)
        #expect(out["policyOf"] as? String == "nat OUTPUT")
    }

    /// Istio's jump deleted from nat OUTPUT: no hop at all, the policy line carries the finding.
    @Test func missingJumpMarksThePolicyWhereTheWalkEnds() throws {
        let (report, ruleset) = try Self.example("healthy") { $0.replacing("-A OUTPUT -j ISTIO_OUTPUT\n", with: "") }
        let text = VerificationText.render(report, ruleset: ruleset, source: "no jump")
        let out = try #require(report.walks.first { $0.direction == .outbound })
        #expect(out.hops.isEmpty)
        let marked = report.findings.enumerated().filter { $0.element.table == .nat && $0.element.chain == "OUTPUT" && $0.element.ruleNumber == nil
            && $0.element.witness?.packet == out.packet }
        let first = try #require(marked.first)
        let lines = try Self.expectHopsListed(out, in: text, ruleset: ruleset)
        #expect(lines.last?.hasPrefix("  → nat OUTPUT policy ACCEPT: ") == true)
        #expect(lines.last?.contains("◀ [\(first.offset + 1)] \(first.element.kind)") == true)
    }

    @Test func tproxyInboundWalkEndsAtTheMangleTProxy() throws {
        let (report, ruleset, config) = try Self.corpus("master/sidecar-iptables/tproxy")
        let text = VerificationText.render(report, ruleset: ruleset, source: "tproxy")
        let into = try #require(report.walks.first { $0.family == .ipv4 && $0.direction == .inbound })
        _ = try Self.expectHopsListed(into, in: text, ruleset: ruleset)
        // raw's jump into its DNS chain, which a TCP packet leaves unchanged, comes first; mangle decides.
        let hops = Self.taken(into).filter { $0.table == .mangle }
        #expect(hops.map(\.chain) == ["PREROUTING", ChainName.istioInbound, ChainName.istioTProxy])
        guard case .tproxy(let t) = hops.last?.rule.target else { Issue.record("not TPROXY: \(hops)"); return }
        #expect(t.port == config.inboundCapturePort)
        #expect(try Self.block(text, .ipv4, .inbound).dropLast().last?.contains("TPROXY redirect 0.0.0.0:\(config.inboundCapturePort)") == true)
        let out = try #require(report.walks.first { $0.family == .ipv4 && $0.direction == .outbound })
        _ = try Self.expectHopsListed(out, in: text, ruleset: ruleset)
        #expect(out.verdict.redirects(to: config.proxyPort))
        try Self.expectOwnerExemption(out, text, uid: 1337)
    }

    /// ip6tables' listing for the IPv6 walks: outbound through an outbound port include list (`-q`), inbound
    /// through an inbound port list (`-b`); the owner exemption at its place.
    @Test func ipv6WalksUseTheIp6tablesListing() throws {
        let (outReport, outRules, outConfig) = try Self.corpus("master/sidecar-iptables/ipv6-outbound-ports")
        let outText = VerificationText.render(outReport, ruleset: outRules, source: "ipv6 out")
        #expect(outReport.walks.map { "\($0.family) \($0.direction)" } == ["ipv4 outbound", "ipv4 inbound", "ipv6 outbound", "ipv6 inbound"])
        let out = try #require(outReport.walks.first { $0.family == .ipv6 && $0.direction == .outbound })
        _ = try Self.expectHopsListed(out, in: outText, ruleset: outRules)
        #expect(out.packet.family == .ipv6 && outConfig.outboundPortsInclude.contains(out.packet.destinationPort))
        #expect(Self.taken(out).map(\.chain) == ["OUTPUT", ChainName.istioOutput, ChainName.istioRedirect])
        #expect(out.verdict.redirects(to: outConfig.proxyPort))
        try Self.expectOwnerExemption(out, outText, uid: try #require(outConfig.proxyUIDs.first))

        let (inReport, inRules, inConfig) = try Self.corpus("master/sidecar-iptables/ipv6-inbound-ports")
        let inText = VerificationText.render(inReport, ruleset: inRules, source: "ipv6 in")
        let into = try #require(inReport.walks.first { $0.family == .ipv6 && $0.direction == .inbound })
        _ = try Self.expectHopsListed(into, in: inText, ruleset: inRules)
        #expect(Self.taken(into).map(\.chain) == ["PREROUTING", ChainName.istioInbound, ChainName.istioInRedirect])
        #expect(into.verdict.redirects(to: inConfig.inboundCapturePort))
        #expect(inConfig.inboundPortsInclude.items.contains(into.packet.destinationPort))
    }

    /// Native nftables has no `-L` form: each hop is the rule as nft lists it, in Istio's `inet istio-proxy-*`
    /// tables (here Istio's own transaction for a TPROXY pod, replayed).
    @Test func nativeNftablesWalksPrintNftRules() throws {
        let c = try #require(Corpus.nftablesCases.first { $0.name == "tproxy" })
        let config = try c.configuration()
        let tables = try NftTransaction.replay(try c.goldenText(), groups: { Corpus.groupIDs[$0] }).flatMap { $0.normalized() }
        let ruleset = Ruleset(tables: tables, backends: [:])
        let report = verify(ruleset, configuration: config)
        let text = VerificationText.render(report, ruleset: ruleset, source: "native")
        let layout = IstioLayout.of(config)
        #expect(text.contains("Walks — one packet per direction through the rules, each rule as nft lists it\n"))
        #expect(!text.contains("iptables -L"), "no iptables listing for native nftables rules")
        for direction in [CaptureWalk.Direction.outbound, .inbound] {
            let walk = try #require(report.walks.first { $0.family == .ipv4 && $0.direction == direction })
            #expect(walk.native)
            let lines = try Self.block(text, .ipv4, direction)
            #expect(lines.count == walk.hops.count + 2)
            for (hop, line) in zip(walk.hops, lines.dropFirst()) {
                #expect([layout.raw, layout.mangle, layout.nat].contains(hop.table))
                let nft = try #require(hop.rule.native?.text)
                #expect(line.hasPrefix("  \(hop.table) \(hop.chain) "))
                #expect(line.split(separator: "   ◀").first.map { $0.hasSuffix(" \(hop.ruleNumber)  " + nft) } == true, "\(line)")
            }
        }
        let out = try #require(report.walks.first { $0.family == .ipv4 && $0.direction == .outbound })
        #expect(out.verdict.redirects(to: config.proxyPort), "\(text)")
        #expect(out.hops.last?.table == layout.nat)
        #expect(out.hops.last?.rule.target == .redirect(PortRewriteTarget(ports: config.proxyPort...config.proxyPort)))
        let exempt = try #require(out.hops.first { !$0.taken })
        #expect(exempt.rule.matches.contains { if case .owner(let o) = $0 { o.uid?.range == 1337...1337 } else { false } })
        let into = try #require(report.walks.first { $0.family == .ipv4 && $0.direction == .inbound })
        #expect(into.hops.last?.table == layout.mangle)
        guard case .tproxy(let t) = into.hops.last?.rule.target else { Issue.record("not TPROXY: \(text)"); return }
        #expect(t.port == config.inboundCapturePort && into.verdict.capturePort == config.inboundCapturePort)
    }

    static func ambient(_ name: String) throws -> (VerificationReport, Ruleset) {
        let repo = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: repo.appendingPathComponent("examples/\(name).save"), encoding: .utf8)
        let ruleset = Ruleset(tables: try SaveTextParser(fileName: name).parse(text), backends: [.ipv4: .text])
        var config = CaptureConfiguration()
        config.istioVersion = IstioVersion(1, 29, 0)
        config.ambient = AmbientSettings()
        return (verify(ruleset, configuration: config), ruleset)
    }

    /// The REDIRECT to ztunnel without its mark exemption: ztunnel's own packet follows the whole walk, and the
    /// finding whose witness it is marks the rule that takes it.
    @Test func ambientWalkMarksTheLostMarkExemption() throws {
        let (report, ruleset) = try Self.ambient("ambient-broken")
        let text = VerificationText.render(report, ruleset: ruleset, source: "ambient-broken")
        let out = try #require(report.walks.first { $0.direction == .outbound })
        let lines = try Self.expectHopsListed(out, in: text, ruleset: ruleset)
        let number = try #require(report.findings.firstIndex { $0.kind == .ownerMatchGap && $0.witness?.packet == out.twin }) + 1
        let finding = report.findings[number - 1]
        let last = try #require(out.hops.last)
        #expect(last.exempt?.parts == false)
        #expect(last.chain == finding.chain && last.ruleNumber == finding.ruleNumber)
        #expect(lines[lines.count - 2].hasSuffix("◀ [\(number)] owner-match-gap"))
        #expect(lines[lines.count - 2].contains("(ztunnel) is taken here too"))
    }

    /// Ambient: ztunnel's mark, not an owner, takes its packets out of the walk.
    @Test func ambientOutboundWalkShowsZtunnelsMark() throws {
        let repo = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: repo.appendingPathComponent("examples/ambient.save"), encoding: .utf8)
        let ruleset = Ruleset(tables: try SaveTextParser(fileName: "ambient").parse(text), backends: [.ipv4: .text])
        var config = CaptureConfiguration()
        config.istioVersion = IstioVersion(1, 29, 0)
        config.ambient = AmbientSettings()
        let report = verify(ruleset, configuration: config)
        let rendered = VerificationText.render(report, ruleset: ruleset, source: "ambient")
        let out = try #require(report.walks.first { $0.direction == .outbound })
        _ = try Self.expectHopsListed(out, in: rendered, ruleset: ruleset)
        #expect(out.verdict.redirects(to: IstioPort.outbound.rawValue))
        let parted = try #require(out.hops.first { $0.exempt != nil })
        #expect(parted.exempt?.who.contains("ztunnel") == true)
        let into = try #require(report.walks.first { $0.direction == .inbound })
        _ = try Self.expectHopsListed(into, in: rendered, ruleset: ruleset)
        #expect(into.verdict.capturePort == IstioPort.inbound.rawValue)
    }
}
