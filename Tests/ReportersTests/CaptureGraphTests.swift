import CaptureVerifier
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import NetfilterModel
import Reporters
import RuleReaders
import TestSupport
import Testing

/// The corpus's live dumps (what iptables-legacy-save printed after loading each golden), one case per golden.
struct GraphCorpusCase: CustomTestStringConvertible, Sendable {
    var ref: String
    var kind: String
    var name: String
    var files: [Family: URL]
    var testDescription: String { "\(ref)/\(kind)/\(name)" }

    func ruleset() throws -> Ruleset {
        var tables: [Table] = []
        for (family, url) in files.sorted(by: { $0.key < $1.key }) {
            tables += try GraphCorpus.tables(try String(contentsOf: url, encoding: .utf8), family)
        }
        return Ruleset(tables: tables, backends: [.ipv4: .text, .ipv6: .text])
    }
}

enum GraphCorpus {
    static func tables(_ text: String, _ family: Family) throws -> [Table] {
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return [] }
        return try SaveTextParser(fileName: "test.\(family)", family: family, groupResolver: { UInt32($0) },
                                  userResolver: { UInt32($0) }).parse(text)
    }

    static func ruleset(ipv4: String, ipv6: String? = nil) throws -> Ruleset {
        var t = try tables(ipv4, .ipv4)
        if let ipv6 { t += try tables(ipv6, .ipv6) }
        return Ruleset(tables: t, backends: [.ipv4: .text, .ipv6: .text])
    }

    /// Every sidecar and CNI live dump of every ref, ipv4 and ipv6 of one golden together.
    static let cases: [GraphCorpusCase] = load(kinds: ["sidecar-iptables", "cni-sidecar-iptables"])
    /// The same plus ambient's in-pod rules (ztunnel), which the graph must draw too.
    static let casesWithAmbient: [GraphCorpusCase] = load(kinds: ["sidecar-iptables", "cni-sidecar-iptables", "ambient-iptables"])

    static func load(kinds: Set<String>) -> [GraphCorpusCase] {
        var byName: [String: GraphCorpusCase] = [:]
        for url in Fixtures.files(under: "istio", suffix: ".save") {
            let parts = url.pathComponents
            guard parts.count >= 4, parts[parts.count - 3] == "live-save" else { continue }
            let kind = parts[parts.count - 2], ref = parts[parts.count - 4]
            guard kinds.contains(kind) else { continue }
            let file = url.lastPathComponent
            let family: Family = file.hasSuffix(".ipv6.save") ? .ipv6 : .ipv4
            let name = String(file.dropLast(".ipv4.save".count))
            let key = "\(ref)/\(kind)/\(name)"
            byName[key, default: GraphCorpusCase(ref: ref, kind: kind, name: name, files: [:])].files[family] = url
        }
        return byName.values.sorted { $0.testDescription < $1.testDescription }
    }

    static func named(_ description: String) -> GraphCorpusCase? { cases.first { $0.testDescription == description } }

    /// Reports with findings: every declared failing example of the verifier's obligations.
    static let failingExamples: [ObligationExample] = obligationDescriptions.flatMap(\.examples).filter {
        if case .fails(_, .error) = $0.expectation { return true }
        return false
    }

    /// A kube-proxy-sized nat table from the project's generator script.
    static func kubeProxyNat(services: Int) throws -> Table {
        let script = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/gen-kube-proxy-rules.py").path
        let r = try runCommand(["python3", script, "--services", "\(services)", "--endpoints", "2"])
        try #require(r.status == 0, "\(r.stderr)")
        return try #require(try tables(r.stdout, .ipv4).first { $0.name == .nat })
    }

    /// `dot -Tsvg` on the text; nil (with a recorded issue) when Graphviz fails.
    static func svg(_ dot: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try runCommand(["dot", "-Tsvg"], stdin: dot)
        #expect(r.status == 0, "dot -Tsvg failed: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stderr.contains("Warning") && !r.stderr.contains("Error"), "dot complained: \(r.stderr)", sourceLocation: sourceLocation)
        return r.stdout
    }

    /// Whether XMLParser accepts the document.
    static func isWellFormedXML(_ text: String) -> Bool {
        let parser = XMLParser(data: Data(text.utf8))
        return parser.parse()
    }

    /// SVG text content, joined (Graphviz writes one `<text>` per label line, XML-escaped).
    static func svgTexts(_ svg: String) -> String {
        final class Collector: NSObject, XMLParserDelegate {
            var inText = false
            var texts: [String] = []
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
                if name == "text" { inText = true; texts.append("") }
            }
            func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
                if name == "text" { inText = false }
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) {
                if inText { texts[texts.count - 1] += string }
            }
        }
        let c = Collector()
        let p = XMLParser(data: Data(svg.utf8))
        p.delegate = c
        _ = p.parse()
        return c.texts.joined(separator: "\n")
    }
}

@Suite struct CaptureGraphTests {
    static let svgCases = [
        "master/sidecar-iptables/basic-exclude-nic",   // IPv4, interface exclusions
        "master/sidecar-iptables/ipv6-dns-uid-gid",    // IPv4 + IPv6 with DNS capture
        "master/sidecar-iptables/tproxy",              // TPROXY in mangle, DNS
        "1.14.6/sidecar-iptables/dns-uid-gid",         // 1.14's hook-level DNS rules
        "master/cni-sidecar-iptables/basic",
    ]

    @Test func theCorpusIsThere() {
        #expect(GraphCorpus.cases.count > 100)
        for name in Self.svgCases { #expect(GraphCorpus.named(name) != nil, "\(name)") }
        #expect(GraphCorpus.failingExamples.count >= 5)
    }

    /// Graphviz draws the DOT of real dumps; the SVG is well-formed and carries every chain Istio hooks in and
    /// every capture port the rules name.
    @Test(arguments: svgCases)
    func dotRendersWithGraphviz(_ name: String) throws {
        let c = try #require(GraphCorpus.named(name))
        let ruleset = try c.ruleset()
        let dot = CaptureGraphDOT.render(CaptureGraph.build(ruleset))
        let svg = try GraphCorpus.svg(dot)
        #expect(GraphCorpus.isWellFormedXML(svg))
        let xmllint = try runCommand(["xmllint", "--noout", "-"], stdin: svg)
        #expect(xmllint.status == 0, "\(xmllint.stderr)")
        let text = GraphCorpus.svgTexts(svg)
        for table in ruleset.tables where [.nat, .mangle, .raw].contains(table.name) {
            for chain in table.chains where chain.name.rawValue.hasPrefix("ISTIO_") {
                #expect(text.contains(chain.name.rawValue), "\(chain.name) of \(table.family) \(table.name) not drawn")
            }
            for rule in table.chains.flatMap(\.rules) {
                switch rule.target {
                case .redirect(let r): #expect(text.contains("REDIRECT :\(r.ports!.lowerBound)"))
                case .tproxy(let t): #expect(text.contains("TPROXY :\(t.port)"))
                default: break
                }
            }
            let family = table.family == .ipv4 ? "IPv4" : "IPv6"
            #expect(text.contains("\(family) \(table.name)"))
        }
    }

    /// A verify report's findings are drawn in red on the rule they name, with their kind and number, and the
    /// SVG still parses.
    @Test(arguments: GraphCorpus.failingExamples.prefix(8).map(\.name))
    func findingsAreHighlightedInTheDrawing(_ exampleName: String) throws {
        let example = try #require(GraphCorpus.failingExamples.first { $0.name == exampleName })
        let ruleset = try GraphCorpus.ruleset(ipv4: example.ipv4, ipv6: example.ipv6)
        let report = CaptureVerifier.verify(ruleset, configuration: example.configuration)
        try #require(!report.findings.isEmpty)
        let graph = CaptureGraph.build(ruleset, report: report)
        let svg = try GraphCorpus.svg(CaptureGraphDOT.render(graph))
        #expect(GraphCorpus.isWellFormedXML(svg))
        let text = GraphCorpus.svgTexts(svg)
        for (i, f) in report.findings.enumerated() where f.table.map({ [.nat, .mangle, .raw].contains($0) }) ?? false {
            #expect(text.contains("[\(i + 1)] \(f.kind)"), "finding \(i + 1) \(f.kind) at \(f.location) not drawn")
        }
        // The edge of a finding's rule carries it, and is red.
        for (i, f) in report.findings.enumerated() {
            guard let t = f.table, [.nat, .mangle, .raw].contains(t), let chain = f.chain, let n = f.ruleNumber else { continue }
            let prefix = (f.family == .ipv4 ? "v4_" : "v6_") + t.rawValue + "_"
            let from = CaptureGraph.sanitize(prefix + chain.rawValue)
            let edge = graph.edges.first { $0.from == from && $0.rules.contains(n) }
            if let edge {
                #expect(edge.findings.contains("[\(i + 1)] \(f.kind)"))
            } else {
                // Rules drawing no edge (a counter-only rule) mark their chain instead.
                let node = graph.clusters.flatMap(\.nodes).first { $0.id == from }
                #expect(node?.findings.contains("[\(i + 1)] \(f.kind)") ?? false, "\(f.location)")
            }
        }
        let dot = CaptureGraphDOT.render(graph)
        #expect(dot.split(separator: "\n").contains { $0.contains("->") && $0.contains("color=red") } ||
                graph.clusters.flatMap(\.nodes).contains { !$0.findings.isEmpty })
    }

    /// Every rule that leaves a drawn chain is on exactly one edge, and RETURN/ACCEPT rules of a chain share one.
    @Test(arguments: GraphCorpus.casesWithAmbient)
    func everyDecidingRuleIsOnOneEdge(_ c: GraphCorpusCase) throws {
        let ruleset = try c.ruleset()
        let graph = CaptureGraph.build(ruleset)
        let ids = graph.clusters.flatMap(\.nodes).map(\.id)
        #expect(Set(ids).count == ids.count, "node ids are unique")
        #expect(ids.allSatisfy { $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } && $0.first?.isNumber == false })
        for edge in graph.edges {
            #expect(ids.contains(edge.from) && ids.contains(edge.to), "edge \(edge.from) -> \(edge.to) to an undeclared node")
            #expect(edge.lines.count <= 6)
        }
        // Each DOT statement sets each attribute once.
        for line in CaptureGraphDOT.render(graph).split(separator: "\n") where line.hasSuffix("];") {
            guard let open = line.firstIndex(of: "[") else { continue }
            let keys = line[open...].matches(of: /(?:\[|, )([a-z]+)=/).map { String($0.1) }
            #expect(Set(keys).count == keys.count, "\(line)")
        }
        for table in ruleset.tables where [.nat, .mangle, .raw].contains(table.name) {
            let prefix = (table.family == .ipv4 ? "v4_" : "v6_") + table.name.rawValue + "_"
            for chain in table.chains where chain.name.rawValue.hasPrefix("ISTIO_") {
                let from = CaptureGraph.sanitize(prefix + chain.name.rawValue)
                #expect(ids.contains(from))
                let out = graph.edges.filter { $0.from == from }
                for (i, rule) in chain.rules.enumerated() where rule.target != .continue {
                    #expect(out.filter { $0.rules.contains(i + 1) }.count == 1, "\(table.name) \(chain.name)#\(i + 1)")
                }
                #expect(out.filter { $0.style == .bypass && $0.to == CaptureGraph.sanitize(prefix + "RETURN") }.count <= 1)
            }
        }
    }

    /// A kube-proxy-sized nat table around Istio's: only the chains on the way to Istio's are drawn, the rest
    /// are counted in the graph's label.
    @Test func kubeProxySizedTablesStayReadable() throws {
        let istio = try #require(GraphCorpus.named("master/sidecar-iptables/basic-exclude-nic")).ruleset()
        var nat = try #require(istio.table(.nat, family: .ipv4))
        let kube = try GraphCorpus.kubeProxyNat(services: 200)
        let kubeChains = kube.chains.filter { !$0.isBuiltin }
        try #require(kubeChains.count > 300)
        for k in kube.chains where k.isBuiltin {
            if let i = nat.chains.firstIndex(where: { $0.name == k.name }) { nat.chains[i].rules.insert(contentsOf: k.rules, at: 0) }
        }
        // A chain on the way to Istio's: OUTPUT → MESH_HOOK → ISTIO_OUTPUT.
        let out = try #require(nat.chains.firstIndex { $0.name == .output })
        nat.chains[out].rules.append(Rule(target: .jump("MESH_HOOK")))
        nat.chains += kubeChains + [Chain(name: "MESH_HOOK", rules: [Rule(protocol: ProtocolMatch(6), target: .jump("ISTIO_OUTPUT"))])]
        nat.sortChains()
        let ruleset = Ruleset(tables: [nat], backends: [.ipv4: .text])
        let graph = CaptureGraph.build(ruleset)
        let labels = graph.clusters.flatMap(\.nodes).map(\.label)
        #expect(labels.contains("MESH_HOOK"))
        #expect(!labels.contains { $0.hasPrefix("KUBE-") }, "kube-proxy chains are not drawn")
        #expect(graph.omittedChains == kubeChains.count)
        let dot = CaptureGraphDOT.render(graph)
        #expect(dot.contains("\(kubeChains.count) chains not leading to Istio's not drawn"))
        #expect(dot.split(separator: "\n").count < 60, "the drawing stays small")
        // The jumps into the omitted chains are one summarized edge per chain.
        let omittedEdges = graph.edges.filter { $0.to.hasSuffix("omitted_chains") }
        #expect(!omittedEdges.isEmpty)
        #expect(Set(omittedEdges.map(\.from)).count == omittedEdges.count)
        let svg = try GraphCorpus.svg(dot)
        #expect(GraphCorpus.isWellFormedXML(svg))
    }

    @Test func renderingIsDeterministic() throws {
        for name in Self.svgCases {
            let c = try #require(GraphCorpus.named(name))
            let a = CaptureGraphDOT.render(CaptureGraph.build(try c.ruleset()))
            let b = CaptureGraphDOT.render(CaptureGraph.build(try c.ruleset()))
            #expect(a == b)
            #expect(CaptureGraphMermaid.render(CaptureGraph.build(try c.ruleset())) == CaptureGraphMermaid.render(CaptureGraph.build(try c.ruleset())))
        }
    }

    @Test func labelsUseShortConditionsAndCapturePorts() throws {
        let ruleset = try GraphCorpus.ruleset(ipv4: """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        :ISTIO_OUTPUT - [0:0]
        :ISTIO_REDIRECT - [0:0]
        -A OUTPUT -p tcp -j ISTIO_OUTPUT
        -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -j ISTIO_REDIRECT
        -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        COMMIT

        """)
        let graph = CaptureGraph.build(ruleset)
        let bypass = try #require(graph.edges.first { $0.style == .bypass })
        #expect(bypass.lines == ["#1 -o lo ! --uid-owner 1337", "#2 --uid-owner 1337"])
        #expect(bypass.rules == [1, 2])
        let capture = try #require(graph.edges.first { $0.style == .capture })
        let target = try #require(graph.clusters.flatMap(\.nodes).first { $0.id == capture.to })
        #expect(target.label == "REDIRECT :15001")
        #expect(target.kind == .capture)
        let dot = CaptureGraphDOT.render(graph)
        #expect(dot.contains("style=dashed"), "bypass edges are dashed")
        #expect(!dot.contains("chains not leading"), "nothing omitted, nothing said")
    }

    @Test func dotQuotingEscapesQuotesAndBackslashes() {
        #expect(CaptureGraphDOT.quote(#"a "b" \c"#) == #""a \"b\" \\c""#)
        #expect(CaptureGraphDOT.quote("one\ntwo") == #""one\ltwo\l""#)
        #expect(CaptureGraph.sanitize("KUBE-SVC-ABC") != CaptureGraph.sanitize("KUBE_SVC_ABC"))
        #expect(CaptureGraph.sanitize("1chain").first == "n")
    }
}
