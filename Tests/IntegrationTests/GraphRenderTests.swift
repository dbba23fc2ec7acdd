import Foundation
import Testing
import TestSupport

/// `iptaudit show|verify --format dot|mermaid|svg` and the annotated listing, through the built executable.
@Suite struct GraphRenderTests {
    static let tproxy = Fixtures.url("istio/master/live-save/sidecar-iptables/tproxy.ipv4.save").path
    static let broken = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples/broken.save").path

    @Test func showSVGIsWellFormedAndNamesTheCapture() throws {
        let r = try Binary.run(["show", "--input", Self.tproxy, "--format", "svg"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("<?xml"))
        let lint = try runCommand(["xmllint", "--noout", "-"], stdin: r.stdout)
        #expect(lint.status == 0, "\(lint.stderr)")
        for label in ["REDIRECT :15001", "TPROXY :15006", "ISTIO_OUTPUT", "ISTIO_TPROXY", "REDIRECT :15053"] {
            #expect(r.stdout.contains(label), "\(label) missing from the SVG")
        }
    }

    @Test func showDotAndMermaidAreDeterministic() throws {
        for format in ["dot", "mermaid"] {
            let a = try Binary.run(["show", "--input", Self.tproxy, "--format", format])
            let b = try Binary.run(["show", "--input", Self.tproxy, "--format", format])
            #expect(a.status == 0, "\(a.stderr)")
            #expect(a.stdout == b.stdout)
            #expect(a.stdout.hasPrefix(format == "dot" ? "digraph" : "flowchart LR"))
        }
    }

    /// The graph formats keep verify's exit code: 1 on error findings, whatever is printed.
    @Test(arguments: ["dot", "mermaid", "svg"])
    func verifyGraphKeepsTheExitCodeAndMarksFindings(_ format: String) throws {
        let r = try Binary.run(["verify", "--input", Self.broken, "--format", format])
        #expect(r.status == 1, "\(r.stderr)")
        // SVG writes `-` as `&#45;`.
        let text = r.stdout.replacingOccurrences(of: "&#45;", with: "-")
        #expect(text.contains("[1] foreign-rule"), "the first finding is drawn with its number and kind")
        if format == "dot" { #expect(r.stdout.contains("color=red")) }
        if format == "mermaid" { #expect(r.stdout.contains("classDef finding")) }
    }

    /// Without Graphviz, svg is a clear error with exit 2, not a crash or an empty picture. `dot` is looked up
    /// only in the system directories (not PATH), so it is taken away in a private mount namespace.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func svgWithoutGraphvizExitsTwo() throws {
        let dot = try #require(HelperPath.real("dot"))
        let script = "mount --bind /dev/null \(dot) && exec \(Binary.path) show --input \(Self.tproxy) --format svg"
        let r = try runCommand(["unshare", "-m", "--propagation", "private", "sh", "-c", script])
        #expect(r.status == 2)
        #expect(r.stderr.contains("Graphviz"))
        #expect(r.stdout.isEmpty)
    }

    @Test func listingPrintsRoles() throws {
        let r = try Binary.run(["show", "--input", Self.tproxy, "--format", "list", "--table", "nat", "--roles"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.contains { $0.contains("redir ports 15001") && $0.hasSuffix("# outbound capture → 15001") })
        #expect(lines.contains { $0.contains("owner UID match 1337") && $0.hasSuffix("# exempts proxy UID 1337") })
        // Without --roles the listing is iptables' own, with no annotation.
        let plain = try Binary.run(["show", "--input", Self.tproxy, "--format", "list", "--table", "nat"])
        #expect(plain.status == 0 && !plain.stdout.contains("# "))
        #expect(try Binary.run(["show", "--input", Self.tproxy, "--format", "save", "--roles"]).status == 64)
    }
}
