import ArgumentParser
import CaptureVerifier
import NetfilterModel
import Reporters
import RuleReaders

/// The picture formats `show` and `verify` share: the capture graph as DOT, Mermaid, or SVG drawn by Graphviz.
enum GraphOutput {
    enum Kind { case dot, mermaid, svg }

    /// Renders the graph; SVG runs Graphviz' `dot` (exit 2 with a clear message when it is not installed).
    static func render(_ kind: Kind, ruleset: Ruleset, report: VerificationReport? = nil, source: String) throws -> String {
        let graph = CaptureGraph.build(ruleset, report: report, title: "iptaudit: \(source)")
        switch kind {
        case .dot: return CaptureGraphDOT.render(graph)
        case .mermaid: return CaptureGraphMermaid.render(graph)
        case .svg: return try svg(CaptureGraphDOT.render(graph))
        }
    }

    /// `dot -Tsvg`, with the graph on its stdin.
    static func svg(_ dotText: String) throws -> String {
        guard try HelperProcess.locate("dot") != nil else {
            printError("iptaudit: -o svg needs Graphviz' `dot` (apt-get install graphviz), or use -o dot and render it elsewhere.")
            throw ExitCodes.unreadable
        }
        let result: HelperOutput
        do {
            result = try HelperProcess.run("dot", ["-Tsvg"], input: Array(dotText.utf8))
        } catch {
            printError("iptaudit: \(error.description)")
            throw ExitCodes.unreadable
        }
        guard result.status == 0 else {
            printError("iptaudit: dot -Tsvg failed (\(result.status)): \(result.stderr)")
            throw ExitCodes.unreadable
        }
        return result.stdout
    }
}
