import CaptureVerifier
import IstioCapture
import NetfilterModel

/// The capture graph: the hook chains Istio hooks into, Istio's chains and every chain on the way, with each
/// rule that leaves a chain drawn as an edge — jumps to chains, REDIRECT/TPROXY to Envoy's ports, RETURN/ACCEPT
/// bypasses — as a value that the DOT and Mermaid renderers turn into text.
///
/// Rules of one chain with the same destination are drawn as one edge listing each rule, so a chain of twenty
/// exemptions stays one arrow. Chains that do not lead to Istio's (a kube-proxy table's thousands of service
/// chains) are left out and counted in the graph's label.
public struct CaptureGraph: Sendable, Hashable {
    public enum NodeKind: String, Sendable, Hashable {
        /// A built-in chain where packets enter the table.
        case hook
        /// One of Istio's `ISTIO_*` chains.
        case istio
        /// Another user chain on the way to Istio's.
        case chain
        /// Where a capture ends: REDIRECT or TPROXY to a port.
        case capture
        /// RETURN or ACCEPT: the packet leaves Istio's rules untouched.
        case bypass
        /// Any other target (DROP, DNAT, MARK, CT, ...).
        case target
        /// Chains a drawn rule jumps to but that were left out.
        case omitted
    }

    public enum EdgeStyle: String, Sendable, Hashable {
        case jump, goto, capture, bypass, effect
    }

    public struct Node: Sendable, Hashable {
        /// `[A-Za-z0-9_]` only, stable for the same tables.
        public var id: String
        public var label: String
        public var kind: NodeKind
        /// `[2] missing-redirect`: findings located at the chain itself (no rule).
        public var findings: [String]
        /// On the walk of a finding's witness.
        public var onPath: Bool
    }

    public struct Edge: Sendable, Hashable {
        public var from: String
        public var to: String
        public var style: EdgeStyle
        /// One line per rule (or a `… N more` line): `#3 -o lo ! --uid-owner 1337`.
        public var lines: [String]
        /// The rule numbers the edge stands for.
        public var rules: [Int]
        public var findings: [String]
        public var onPath: Bool
    }

    /// One table of one family.
    public struct Cluster: Sendable, Hashable {
        public var id: String
        public var label: String
        public var nodes: [Node]
    }

    public var title: String
    public var clusters: [Cluster]
    public var edges: [Edge]
    /// User chains not drawn, summed over every table.
    public var omittedChains: Int

    /// Hook chains Istio hooks into, per table.
    static let hooks: [TableName: [ChainName]] = [
        .nat: [.prerouting, .output], .mangle: [.prerouting, .output], .raw: [.prerouting, .output],
    ]
    /// More rules than this on one edge are summarized.
    static let maxLinesPerEdge = 6
    static let maxConditionLength = 64

    /// Builds the graph of `ruleset`, with the findings of `report` (numbered as the report lists them) marked on
    /// the rules and chains they name and along their witnesses' paths.
    public static func build(_ ruleset: Ruleset, report: VerificationReport? = nil, title: String = "iptaudit capture graph") -> CaptureGraph {
        var clusters: [Cluster] = []
        var edges: [Edge] = []
        var omitted = 0
        let findings = Array((report?.findings ?? []).enumerated())
        for table in ruleset.tables.sorted(by: { ($0.family, order($0.name)) < ($1.family, order($1.name)) }) {
            guard let hooks = Self.hooks[table.name] else { continue }
            let mine = findings.filter { $0.element.family == table.family && ($0.element.table == table.name || $0.element.path.contains { $0.table == table.name }) }
            let (cluster, tableEdges, left) = build(table, hooks: hooks, findings: mine)
            omitted += left
            guard !cluster.nodes.isEmpty else { continue }
            clusters.append(cluster)
            edges += tableEdges
        }
        return CaptureGraph(title: title, clusters: clusters, edges: edges, omittedChains: omitted)
    }

    static func order(_ t: TableName) -> Int { TableName.standard.firstIndex(of: t) ?? 99 }

    private static func build(_ table: Table, hooks: [ChainName], findings: [(offset: Int, element: Finding)])
        -> (Cluster, [Edge], Int) {
        let prefix = (table.family == .ipv4 ? "v4_" : "v6_") + table.name.rawValue
        func nodeID(_ suffix: String) -> String { sanitize(prefix + "_" + suffix) }
        // Chains on a finding's path, or named by one, are drawn whatever they lead to.
        var forced = Set<ChainName>()
        for (_, f) in findings {
            if f.table == table.name, let c = f.chain { forced.insert(c) }
            for s in f.path where s.table == table.name {
                forced.insert(s.chain)
                if let c = s.jumpTarget { forced.insert(c) }
            }
        }
        let drawn = drawnChains(table, hooks: hooks, forced: forced)
        let omitted = table.chains.filter { !$0.isBuiltin && !drawn.contains($0.name) }.count

        var nodes: [String: Node] = [:]
        var nodeOrder: [String] = []
        func addNode(_ id: String, _ label: String, _ kind: NodeKind) {
            guard nodes[id] == nil else { return }
            nodes[id] = Node(id: id, label: label, kind: kind, findings: [], onPath: false)
            nodeOrder.append(id)
        }
        struct Key: Hashable { var from: String, to: String, style: EdgeStyle }
        var grouped: [Key: [(Int, String)]] = [:]
        var keyOrder: [Key] = []
        var targetIDs: [String: String] = [:]

        for chain in table.chains where drawn.contains(chain.name) {
            let from = nodeID(chain.name.rawValue)
            let kind: NodeKind = chain.isBuiltin ? .hook : IstioNames.isIstioChain(chain.name) ? .istio : .chain
            addNode(from, chain.isBuiltin ? "\(table.name) \(chain.name)" : chain.name.rawValue, kind)
            for (i, rule) in chain.rules.enumerated() {
                let number = i + 1
                guard let found = destination(of: rule, table: table, drawn: drawn, nodeID: nodeID) else { continue }
                var to = found.0
                let (label, nodeKind, style) = (found.1, found.2, found.3)
                if nodeKind == .target {
                    if let known = targetIDs[label] {
                        to = known
                    } else {
                        var id = to, k = 2
                        while nodes[id] != nil || table.chain(ChainName(id)) != nil { id = to + "_\(k)"; k += 1 }
                        targetIDs[label] = id
                        to = id
                    }
                }
                if nodeKind == .omitted {
                    let id = nodeID("omitted_chains")
                    addNode(id, "\(omitted) chain\(omitted == 1 ? "" : "s") not leading to Istio's", .omitted)
                } else {
                    addNode(to, label, nodeKind)
                }
                let key = Key(from: from, to: nodeKind == .omitted ? nodeID("omitted_chains") : to, style: style)
                if grouped[key] == nil { keyOrder.append(key) }
                grouped[key, default: []].append((number, "#\(number)" + conditions(rule, family: table.family, omittedTarget: nodeKind == .omitted)))
            }
        }

        var edges: [Edge] = keyOrder.map { key in
            let rules = grouped[key] ?? []
            var lines = rules.map(\.1)
            if lines.count > maxLinesPerEdge {
                let more = lines.count - (maxLinesPerEdge - 1)
                lines = Array(lines.prefix(maxLinesPerEdge - 1)) + ["… \(more) more rules"]
            }
            return Edge(from: key.from, to: key.to, style: key.style, lines: lines, rules: rules.map(\.0), findings: [], onPath: false)
        }

        // Findings: red on the rule's edge (or the chain when no rule is named), and along the witness's walk.
        for (offset, f) in findings {
            let tag = "[\(offset + 1)] \(f.kind)"
            if f.table == table.name, let chain = f.chain {
                let from = nodeID(chain.rawValue)
                if let n = f.ruleNumber, let e = edges.firstIndex(where: { $0.from == from && $0.rules.contains(n) }) {
                    if !edges[e].findings.contains(tag) { edges[e].findings.append(tag) }
                } else if nodes[from] != nil, !(nodes[from]?.findings.contains(tag) ?? true) {
                    nodes[from]?.findings.append(tag)
                }
            }
            for step in f.path where step.table == table.name {
                let from = nodeID(step.chain.rawValue)
                nodes[from]?.onPath = true
                if let n = step.ruleNumber, let e = edges.firstIndex(where: { $0.from == from && $0.rules.contains(n) }) {
                    edges[e].onPath = true
                    nodes[edges[e].to]?.onPath = true
                }
            }
        }
        let family = table.family == .ipv4 ? "IPv4" : "IPv6"
        let cluster = Cluster(id: "cluster_" + sanitize(prefix), label: "\(family) \(table.name)", nodes: nodeOrder.compactMap { nodes[$0] })
        return (cluster, edges, omitted)
    }

    /// Hook chains with rules, Istio's chains, and the chains between them: those reachable from a hook that
    /// reach an Istio chain (plus any a finding names).
    static func drawnChains(_ table: Table, hooks: [ChainName], forced: Set<ChainName>) -> Set<ChainName> {
        var jumps: [ChainName: Set<ChainName>] = [:]
        for chain in table.chains {
            for rule in chain.rules { if let t = rule.target.chainReference { jumps[chain.name, default: []].insert(t) } }
        }
        let names = Set(table.chains.map(\.name))
        let istio = Set(table.chains.map(\.name).filter(IstioNames.isIstioChain))
        func closure(from start: [ChainName], _ next: (ChainName) -> Set<ChainName>) -> Set<ChainName> {
            var seen = Set(start)
            var stack = start
            while let c = stack.popLast() { for n in next(c) where names.contains(n) && seen.insert(n).inserted { stack.append(n) } }
            return seen
        }
        var reverse: [ChainName: Set<ChainName>] = [:]
        for (from, tos) in jumps { for to in tos { reverse[to, default: []].insert(from) } }
        let hookChains = hooks.filter { h in !(table.chain(h)?.rules.isEmpty ?? true) || forced.contains(h) }
        let fromHooks = closure(from: hookChains) { jumps[$0] ?? [] }
        let toIstio = closure(from: Array(istio) + Array(forced)) { reverse[$0] ?? [] }
        var drawn = istio.union(forced.intersection(names))
        drawn.formUnion(fromHooks.intersection(toIstio))
        drawn.formUnion(hookChains)
        return drawn
    }

    /// Where a rule's edge goes, or nil for a rule that only counts or has no effect worth drawing.
    private static func destination(of rule: Rule, table: Table, drawn: Set<ChainName>, nodeID: (String) -> String)
        -> (String, String, NodeKind, EdgeStyle)? {
        switch rule.target {
        case .jump(let c), .goto(let c):
            let style: EdgeStyle = rule.target == .goto(c) ? .goto : .jump
            guard drawn.contains(c) else {
                return table.chain(c) == nil ? (nodeID("missing_" + c.rawValue), "\(c) (missing chain)", .target, style)
                    : ("", "", .omitted, style)
            }
            let kind: NodeKind = IstioNames.isIstioChain(c) ? .istio : .chain
            return (nodeID(c.rawValue), c.rawValue, kind, style)
        case .redirect(let r):
            let ports = r.ports.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
            let label = "REDIRECT" + (ports.map { " :" + $0 } ?? "")
            return (nodeID("REDIRECT_" + (ports ?? "same")), label, .capture, .capture)
        case .tproxy(let t):
            return (nodeID("TPROXY_\(t.port)"), "TPROXY :\(t.port) mark 0x\(String(t.markValue, radix: 16))", .capture, .capture)
        case .return:
            return (nodeID("RETURN"), "RETURN (not captured)", .bypass, .bypass)
        case .accept:
            return (nodeID("ACCEPT"), "ACCEPT", .bypass, .bypass)
        case .continue:
            return nil
        default:
            let text = String(SaveSyntax.targetText(rule.target, family: table.family).dropFirst(4))
            let short = text.replacing("/0xffffffff", with: "")
                .replacing(" --nfmask 0xffffffff --ctmask 0xffffffff", with: "")
            // Readable ids (`v4_raw_target_CT_zone_1`); the builder makes them unique per label.
            let readable = short.split(whereSeparator: { !($0.isASCII && ($0.isLetter || $0.isNumber)) }).joined(separator: "_")
            return (nodeID("target_" + readable), short, .target, .effect)
        }
    }

    /// A rule's conditions in short save syntax (no `-m tcp` noise), prefixed by a space; "" for none.
    static func conditions(_ rule: Rule, family: Family, omittedTarget: Bool) -> String {
        var r = rule
        r.target = .continue
        r.matches = rule.matches.filter { if case .comment = $0 { return false }; return true }
        var text = SaveSyntax.ruleSpec(r, family: family)
        for noise in ["tcp", "udp", "owner", "multiport", "mark", "connmark", "conntrack", "addrtype", "set", "socket"] {
            text = text.replacing(" -m \(noise) ", with: " ")
        }
        if omittedTarget, let c = rule.target.chainReference { text += " → " + c.rawValue }
        if text.count > maxConditionLength { text = String(text.prefix(maxConditionLength - 1)) + "…" }
        return text
    }

    /// A node id: letters, digits and underscores only, never starting with a digit.
    public static func sanitize(_ name: String) -> String {
        var out = ""
        for u in name.unicodeScalars {
            if (u >= "a" && u <= "z") || (u >= "A" && u <= "Z") || (u >= "0" && u <= "9") || u == "_" {
                out.unicodeScalars.append(u)
            } else {
                out += "_x\(String(u.value, radix: 16))_"
            }
        }
        if let f = out.unicodeScalars.first, f >= "0" && f <= "9" { out = "n" + out }
        return out.isEmpty ? "n_" : out
    }

    /// A label's lines, findings first.
    static func lines(of edge: Edge) -> [String] { edge.findings.map { "⚠ " + $0 } + edge.lines }
    static func lines(of node: Node) -> [String] { [node.label] + node.findings.map { "⚠ " + $0 } }

    var summary: String {
        title + (omittedChains > 0 ? " — \(omittedChains) chain\(omittedChains == 1 ? "" : "s") not leading to Istio's not drawn" : "")
    }
}

extension TraceStep {
    var jumpTarget: ChainName? {
        switch action {
        case .jump(let c), .goto(let c): c
        default: nil
        }
    }
}

/// Graphviz DOT: `iptaudit show --format dot | dot -Tsvg`.
public enum CaptureGraphDOT {
    public static func render(_ graph: CaptureGraph) -> String {
        var out = ["digraph iptaudit {"]
        out.append("  graph [rankdir=LR, fontname=\"Helvetica\", labelloc=t, label=\(quote(graph.summary))];")
        out.append("  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=\"Helvetica\", fontsize=11];")
        out.append("  edge [fontname=\"Helvetica\", fontsize=9];")
        for cluster in graph.clusters {
            out.append("  subgraph \(cluster.id) {")
            out.append("    label=\(quote(cluster.label)); style=rounded; color=gray60;")
            for node in cluster.nodes {
                var attrs = Attributes()
                attrs["label"] = quote(CaptureGraph.lines(of: node).joined(separator: "\n"))
                switch node.kind {
                case .hook: attrs["shape"] = "cds"; attrs["fillcolor"] = "lightyellow"
                case .istio: attrs["fillcolor"] = "lightblue"
                case .chain: attrs["fillcolor"] = "gray95"
                case .capture: attrs["shape"] = "doubleoctagon"; attrs["fillcolor"] = "palegreen"
                case .bypass: attrs["shape"] = "ellipse"; attrs["style"] = "\"dashed,filled\""; attrs["fillcolor"] = "gray90"
                case .target: attrs["shape"] = "ellipse"; attrs["fillcolor"] = "lavender"
                case .omitted: attrs["shape"] = "note"; attrs["style"] = "dashed"; attrs["color"] = "gray50"; attrs["fontcolor"] = "gray40"
                }
                if !node.findings.isEmpty { attrs["color"] = "red"; attrs["fontcolor"] = "red"; attrs["penwidth"] = "3" }
                else if node.onPath { attrs["color"] = "red"; attrs["penwidth"] = "2" }
                out.append("    \(node.id) [\(attrs.text)];")
            }
            out.append("  }")
        }
        for edge in graph.edges {
            var attrs = Attributes()
            attrs["label"] = quote(CaptureGraph.lines(of: edge).joined(separator: "\n"))
            switch edge.style {
            case .jump: break
            case .goto: attrs["arrowhead"] = "empty"
            case .capture: attrs["color"] = "darkgreen"; attrs["penwidth"] = "2"
            case .bypass: attrs["style"] = "dashed"; attrs["color"] = "gray50"; attrs["fontcolor"] = "gray30"
            case .effect: attrs["style"] = "dotted"; attrs["color"] = "purple"
            }
            if !edge.findings.isEmpty { attrs["color"] = "red"; attrs["fontcolor"] = "red"; attrs["penwidth"] = "3" }
            else if edge.onPath { attrs["color"] = "red"; attrs["penwidth"] = "2" }
            out.append("  \(edge.from) -> \(edge.to) [\(attrs.text)];")
        }
        out.append("}")
        return out.joined(separator: "\n") + "\n"
    }

    /// Attributes in the order first set; setting one again replaces its value in place.
    struct Attributes {
        private var items: [(String, String)] = []
        subscript(key: String) -> String? {
            get { items.first { $0.0 == key }?.1 }
            set {
                if let i = items.firstIndex(where: { $0.0 == key }) {
                    if let newValue { items[i].1 = newValue } else { items.remove(at: i) }
                } else if let newValue { items.append((key, newValue)) }
            }
        }
        var text: String { items.map { "\($0.0)=\($0.1)" }.joined(separator: ", ") }
    }

    /// A DOT string literal; lines left-justified (`\l`) so rule lists read as a column.
    public static func quote(_ s: String) -> String {
        var out = "\""
        let lines = s.split(separator: "\n", omittingEmptySubsequences: false)
        for (i, line) in lines.enumerated() {
            for c in line {
                switch c {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                default: out.append(c)
                }
            }
            if lines.count > 1 { out += "\\l" } else if i < lines.count - 1 { out += "\\n" }
        }
        return out + "\""
    }
}

/// Mermaid `flowchart LR`, as GitHub renders it in Markdown.
public enum CaptureGraphMermaid {
    public static func render(_ graph: CaptureGraph) -> String {
        var out = ["flowchart LR"]
        out.append("  %% \(escape(graph.summary))")
        var classes: [String: [String]] = [:]
        for cluster in graph.clusters {
            out.append("  subgraph \(cluster.id)[\"\(escape(cluster.label))\"]")
            for node in cluster.nodes {
                let label = "\"" + CaptureGraph.lines(of: node).map(escape).joined(separator: "<br/>") + "\""
                let shape: String = switch node.kind {
                case .hook: "[[\(label)]]"
                case .istio, .chain: "[\(label)]"
                case .capture: "{{\(label)}}"
                case .bypass, .target: "([\(label)])"
                case .omitted: "[/\(label)/]"
                }
                out.append("    \(node.id)\(shape)")
                classes[node.kind.rawValue, default: []].append(node.id)
                if !node.findings.isEmpty { classes["finding", default: []].append(node.id) }
                else if node.onPath { classes["path", default: []].append(node.id) }
            }
            out.append("  end")
        }
        var red: [Int] = [], path: [Int] = [], bypass: [Int] = [], capture: [Int] = []
        for (i, edge) in graph.edges.enumerated() {
            let label = "\"" + CaptureGraph.lines(of: edge).map(escape).joined(separator: "<br/>") + "\""
            let arrow: String = switch edge.style {
            case .jump, .goto: "-->"
            case .capture: "==>"
            case .bypass, .effect: "-.->"
            }
            out.append("  \(edge.from) \(arrow)|\(label)| \(edge.to)")
            if !edge.findings.isEmpty { red.append(i) } else if edge.onPath { path.append(i) }
            else if edge.style == .bypass { bypass.append(i) } else if edge.style == .capture { capture.append(i) }
        }
        out += [
            "  classDef hook fill:#ffffe0,stroke:#999",
            "  classDef istio fill:#add8e6,stroke:#369",
            "  classDef chain fill:#f2f2f2,stroke:#999",
            "  classDef capture fill:#98fb98,stroke:#060",
            "  classDef bypass fill:#e5e5e5,stroke:#888,stroke-dasharray:4 3",
            "  classDef target fill:#e6e6fa,stroke:#669",
            "  classDef omitted fill:#fff,stroke:#aaa,stroke-dasharray:2 2,color:#666",
            "  classDef path stroke:#d00,stroke-width:2px",
            "  classDef finding stroke:#d00,stroke-width:4px,color:#d00",
        ]
        for name in ["hook", "istio", "chain", "capture", "bypass", "target", "omitted", "path", "finding"] {
            if let ids = classes[name], !ids.isEmpty { out.append("  class \(ids.joined(separator: ",")) \(name)") }
        }
        if !bypass.isEmpty { out.append("  linkStyle \(bypass.map(String.init).joined(separator: ",")) stroke:#888") }
        if !capture.isEmpty { out.append("  linkStyle \(capture.map(String.init).joined(separator: ",")) stroke:#060") }
        if !path.isEmpty { out.append("  linkStyle \(path.map(String.init).joined(separator: ",")) stroke:#d00,stroke-width:2px") }
        if !red.isEmpty { out.append("  linkStyle \(red.map(String.init).joined(separator: ",")) stroke:#d00,stroke-width:4px,color:#d00") }
        return out.joined(separator: "\n") + "\n"
    }

    /// Text safe inside a quoted Mermaid label: quotes, angle brackets, `#`, `;` and pipes become entity codes
    /// (Mermaid reads `#…;` as one, and would end the label or the edge text at the others).
    public static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "#": out += "#35;"
            case "\"": out += "#quot;"
            case "<": out += "#lt;"
            case ">": out += "#gt;"
            case "|": out += "#124;"
            case ";": out += "#59;"
            case "&": out += "#amp;"
            case "\n": out += " "
            default: out.append(c)
            }
        }
        return out
    }
}
