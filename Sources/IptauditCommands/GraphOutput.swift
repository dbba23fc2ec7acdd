import ArgumentParser
import CaptureVerifier
import Foundation
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
        guard let dot = findOnPath("dot") else {
            printError("iptaudit: --format svg needs Graphviz' `dot` on PATH (apt-get install graphviz), or use --format dot and render it elsewhere.")
            throw ExitCodes.unreadable
        }
        let result = try runProcess([dot, "-Tsvg"], input: Data(dotText.utf8))
        guard result.status == 0 else {
            printError("iptaudit: dot -Tsvg failed (\(result.status)): \(result.stderr)")
            throw ExitCodes.unreadable
        }
        return result.stdout
    }

    static func findOnPath(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
