import CaptureVerifier
import Foundation
import NetfilterModel
import Reporters
import Testing

/// A checker for the subset of Mermaid `flowchart` syntax the renderer emits: a header, `subgraph ID["label"]` /
/// `end` blocks, node statements `ID<shape>"label"<shape>`, edges `ID -->|"label"| ID` (`-->`, `==>`, `-.->`),
/// `classDef`, `class`, `linkStyle` and `%%` comments. Labels must be quoted, contain no raw quote, and every
/// character Mermaid would read as syntax must be an entity code.
enum MermaidSubset {
    struct Problem: Error, CustomStringConvertible {
        var line: Int
        var text: String
        var description: String { "line \(line): \(text)" }
    }

    static let shapes: [(open: String, close: String)] = [("[[", "]]"), ("([", "])"), ("{{", "}}"), ("[/", "/]"), ("[", "]")]
    static let arrows = ["-->", "==>", "-.->"]

    static func validate(_ text: String) -> [Problem] {
        var problems: [Problem] = []
        var declared: [String: Int] = [:]
        var subgraphs = Set<String>()
        var edges = 0
        var depth = 0
        var used: [(Int, String)] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.first == "flowchart LR" else { return [Problem(line: 1, text: "header must be `flowchart LR`")] }
        func fail(_ n: Int, _ s: String) { problems.append(Problem(line: n, text: s)) }

        /// A quoted label: `"…"` with no raw quote inside and no bare character Mermaid treats as markup.
        func checkLabel(_ label: Substring, _ n: Int) {
            guard label.count >= 2, label.first == "\"", label.last == "\"" else { return fail(n, "label not quoted: \(label)") }
            let inner = label.dropFirst().dropLast()
            if inner.contains("\"") { fail(n, "raw quote inside a label") }
            if inner.contains("|") { fail(n, "raw pipe inside a label") }
            // `<` only as the `<br/>` line break; `#` only as an entity code `#name;` / `#123;`.
            if inner.replacingOccurrences(of: "<br/>", with: "").contains(where: { $0 == "<" || $0 == ">" }) { fail(n, "raw angle bracket") }
            var rest = Substring(inner)
            while let i = rest.firstIndex(of: "#") {
                let after = rest[rest.index(after: i)...]
                guard let semi = after.firstIndex(of: ";"), after[..<semi].allSatisfy({ $0.isLetter || $0.isNumber }), !after[..<semi].isEmpty
                else { return fail(n, "`#` not starting an entity code") }
                rest = after[after.index(after: semi)...]
            }
        }
        func isID(_ s: Substring) -> Bool {
            !s.isEmpty && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") } && !(s.first?.isNumber ?? true)
                && !["end", "subgraph", "graph", "flowchart", "class", "classDef", "style", "linkStyle", "click"].contains(String(s))
        }

        for (index, raw) in lines.enumerated().dropFirst() {
            let n = index + 1
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("%%") { continue }
            if line == "end" {
                depth -= 1
                if depth < 0 { fail(n, "`end` without `subgraph`") }
                continue
            }
            if line.hasPrefix("subgraph ") {
                let body = line.dropFirst("subgraph ".count)
                guard let open = body.firstIndex(of: "["), body.hasSuffix("]") else { fail(n, "subgraph needs ID[\"label\"]"); continue }
                let id = body[..<open]
                if !isID(id) { fail(n, "bad subgraph id \(id)") }
                if !subgraphs.insert(String(id)).inserted || declared[String(id)] != nil { fail(n, "duplicate id \(id)") }
                checkLabel(body[body.index(after: open)..<body.index(before: body.endIndex)], n)
                depth += 1
                continue
            }
            if line.hasPrefix("classDef ") || line.hasPrefix("linkStyle ") {
                // The style may hold spaces (`stroke-dasharray:4 3`); name and style must be there.
                let parts = line.split(separator: " ")
                if parts.count < 3 || !parts[2].contains(":") { fail(n, "expected `\(parts[0]) NAME STYLE`") }
                if line.hasPrefix("linkStyle "), parts.count >= 3 {
                    for i in parts[1].split(separator: ",") {
                        guard let k = Int(i), k >= 0 else { fail(n, "bad link index \(i)"); continue }
                        if k >= edges { fail(n, "link index \(k) beyond \(edges) edges") }
                    }
                }
                continue
            }
            if line.hasPrefix("class ") {
                let parts = line.split(separator: " ")
                if parts.count != 3 { fail(n, "expected `class IDS NAME`"); continue }
                for id in parts[1].split(separator: ",") { used.append((n, String(id))) }
                continue
            }
            if let arrow = arrows.first(where: { line.contains(" \($0)|") }) {
                // ID ARROW|"label"| ID
                let pieces = line.components(separatedBy: " \(arrow)|")
                guard pieces.count == 2, let close = pieces[1].range(of: "\"| ", options: .backwards) else { fail(n, "bad edge"); continue }
                let from = Substring(pieces[0]), to = pieces[1][close.upperBound...]
                if !isID(from) || !isID(to) { fail(n, "bad edge ends \(from) / \(to)") }
                checkLabel(pieces[1][..<pieces[1].index(after: close.lowerBound)], n)
                used.append((n, String(from)))
                used.append((n, String(to)))
                edges += 1
                continue
            }
            // Node: ID + shape + label + shape.
            guard let start = line.firstIndex(where: { !($0.isLetter || $0.isNumber || $0 == "_") }) else { fail(n, "bare id"); continue }
            let id = line[..<start]
            let rest = line[start...]
            guard let shape = shapes.first(where: { rest.hasPrefix($0.open) && rest.hasSuffix($0.close) }) else { fail(n, "unknown statement or shape: \(line)"); continue }
            if !isID(id) { fail(n, "bad node id \(id)") }
            if declared[String(id)] != nil || subgraphs.contains(String(id)) { fail(n, "duplicate node \(id)") }
            declared[String(id)] = n
            checkLabel(rest.dropFirst(shape.open.count).dropLast(shape.close.count), n)
        }
        if depth != 0 { fail(lines.count, "unbalanced subgraph/end") }
        for (n, id) in used where declared[id] == nil { fail(n, "\(id) used but never declared") }
        return problems
    }
}

@Suite struct MermaidGraphTests {
    @Test(arguments: GraphCorpus.casesWithAmbient)
    func everyCorpusCaseIsValidMermaid(_ c: GraphCorpusCase) throws {
        let text = CaptureGraphMermaid.render(CaptureGraph.build(try c.ruleset()))
        let problems = MermaidSubset.validate(text)
        #expect(problems.isEmpty, "\(problems.map(\.description).joined(separator: "\n"))\n\(text)")
        #expect(text.contains("-->") || text.contains("==>") || text.contains("-.->"), "the graph has edges")
    }

    @Test(arguments: GraphCorpus.failingExamples.map(\.name))
    func verifyGraphsAreValidMermaid(_ name: String) throws {
        let example = try #require(GraphCorpus.failingExamples.first { $0.name == name })
        let ruleset = try GraphCorpus.ruleset(ipv4: example.ipv4, ipv6: example.ipv6)
        let report = CaptureVerifier.verify(ruleset, configuration: example.configuration)
        let text = CaptureGraphMermaid.render(CaptureGraph.build(ruleset, report: report))
        let problems = MermaidSubset.validate(text)
        #expect(problems.isEmpty, "\(problems.map(\.description).joined(separator: "\n"))\n\(text)")
        if report.findings.contains(where: { $0.table == .nat && $0.chain != nil }) {
            #expect(text.contains("classDef finding") && (text.contains(" finding\n") || text.contains("stroke-width:4px,color:#d00")))
        }
    }

    /// The validator can fail: each broken variant of a valid rendering is rejected.
    @Test(arguments: [
        ("header", "flowchart LR", "graph TD"),
        ("raw quote", "\"ISTIO_OUTPUT\"", "\"ISTIO_\"OUTPUT\""),
        ("unquoted label", "[\"ISTIO_OUTPUT\"]", "[ISTIO_OUTPUT]"),
        ("bare hash", "#35;1", "#1 x"),
        ("unbalanced", "  end\n", "\n"),
        ("duplicate id", "v4_nat_ISTIO_REDIRECT[\"ISTIO_REDIRECT\"]", "v4_nat_ISTIO_OUTPUT[\"ISTIO_REDIRECT\"]"),
        ("undeclared edge end", "| v4_nat_REDIRECT_15001", "| v4_nat_NOWHERE"),
        ("angle bracket", "REDIRECT :15001", "REDIRECT <15001>"),
    ])
    func brokenMermaidIsRejected(_ what: String, _ original: String, _ broken: String) throws {
        let ruleset = try GraphCorpus.ruleset(ipv4: """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        :ISTIO_OUTPUT - [0:0]
        :ISTIO_REDIRECT - [0:0]
        -A OUTPUT -p tcp -j ISTIO_OUTPUT
        -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -j ISTIO_REDIRECT
        -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        COMMIT

        """)
        let good = CaptureGraphMermaid.render(CaptureGraph.build(ruleset))
        #expect(MermaidSubset.validate(good).isEmpty, "\(MermaidSubset.validate(good))")
        let range = try #require(good.range(of: original), "\(what): \(original) not in\n\(good)")
        let bad = good.replacingCharacters(in: range, with: broken)
        #expect(!MermaidSubset.validate(bad).isEmpty, "\(what) accepted:\n\(bad)")
    }

    @Test func escapingCoversMermaidSyntax() {
        #expect(CaptureGraphMermaid.escape(#"#3 "a" <b> | c; d & e"#) == "#35;3 #quot;a#quot; #lt;b#gt; #124; c#59; d #amp; e")
    }
}
