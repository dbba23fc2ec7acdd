import Foundation

/// Output of a helper program (iptables-nft-save, ip, nft, dot).
public struct ProcessOutput: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program (an absolute path, or a name found on PATH) and collects its output. `input` is written to
/// its stdin from another thread, and stderr is drained concurrently, so neither side can block on a full pipe.
public func runProcess(_ argv: [String], input: Data? = nil) throws -> ProcessOutput {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let stdin = input.map { _ in Pipe() }
    p.standardInput = stdin ?? FileHandle.nullDevice
    try p.run()
    if let input, let writer = stdin?.fileHandleForWriting {
        DispatchQueue.global().async {
            writer.write(input)
            try? writer.close()
        }
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
    return ProcessOutput(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}
