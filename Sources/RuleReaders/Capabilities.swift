/// The calling thread's effective capabilities, from `CapEff` in `/proc/thread-self/status`, so a refusal can say
/// whether a capability is really missing or something else (a root-only file) stands in the way.
public struct Capabilities: Hashable, Sendable {
    public var effective: UInt64

    public static let netAdmin = 12
    public static let netRaw = 13

    /// nil when the status file cannot be read or holds no `CapEff` line.
    public static func current() -> Capabilities? {
        guard let bytes = try? FileContents.read(path: "/proc/thread-self/status") else { return nil }
        return parse(String(decoding: bytes, as: UTF8.self))
    }

    static func parse(_ status: String) -> Capabilities? {
        for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
            let hex = line.dropFirst("CapEff:".count).trimmingPrefix { $0 == " " || $0 == "\t" }
            return UInt64(hex, radix: 16).map(Capabilities.init(effective:))
        }
        return nil
    }

    public func holds(_ capability: Int) -> Bool { effective & (1 << UInt64(capability)) != 0 }
}
