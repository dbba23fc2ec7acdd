import ArgumentParser
import CaptureVerifier
import Foundation
import NetfilterModel
import Reporters

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

    /// `dot -Tsvg`, fed on stdin from another thread so a large graph cannot deadlock on a full pipe.
    static func svg(_ dotText: String) throws -> String {
        guard let dot = findOnPath("dot") else {
            printError("iptaudit: --format svg needs Graphviz' `dot` on PATH (apt-get install graphviz), or use --format dot and render it elsewhere.")
            throw ExitCodes.unreadable
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: dot)
        p.arguments = ["-Tsvg"]
        let inp = Pipe(), out = Pipe(), err = Pipe()
        p.standardInput = inp
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let input = Data(dotText.utf8)
        let writer = inp.fileHandleForWriting
        DispatchQueue.global().async {
            writer.write(input)
            try? writer.close()
        }
        nonisolated(unsafe) var errData = Data()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            done.signal()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            printError("iptaudit: dot -Tsvg failed (\(p.terminationStatus)): \(String(decoding: errData, as: UTF8.self))")
            throw ExitCodes.unreadable
        }
        return String(decoding: outData, as: UTF8.self)
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
