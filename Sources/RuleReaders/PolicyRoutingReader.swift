import Foundation
import NetfilterModel

/// Reads `ip rule` and the non-main routing tables of a namespace through iproute2's JSON output.
/// TPROXY capture only works with `fwmark M lookup T` plus a `local` default route in T (model doc §5).
public struct PolicyRoutingReader: Sendable {
    public var namespacePath: String?
    public init(namespacePath: String? = nil) { self.namespacePath = namespacePath }

    public func read(families: [Family]) throws(RuleReaderError) -> PolicyRouting {
        var state = PolicyRouting()
        for family in families {
            let flag = family == .ipv4 ? "-4" : "-6"
            let rules = try json(["ip", "-j", flag, "rule", "show"])
            for r in rules {
                guard let table = r["table"].map({ "\($0)" }) else { continue }
                var fwmark: UInt32?, fwmask: UInt32?
                if let m = r["fwmark"] as? String { fwmark = PolicyRoutingReader.number(m) }
                if let m = r["fwmask"] as? String { fwmask = PolicyRoutingReader.number(m) }
                let priority = (r["priority"] as? NSNumber)?.uint32Value
                state.rules.append(.init(family: family, priority: priority, fwmark: fwmark, fwmask: fwmask, table: table))
            }
            // Only tables named by a fwmark rule matter here; read each one.
            let tables = Set(state.rules.filter { $0.family == family && $0.fwmark != nil }.map(\.table))
            for table in tables.sorted() {
                for route in try json(["ip", "-j", flag, "route", "show", "table", table]) {
                    state.routes.append(.init(family: family, type: route["type"] as? String ?? "unicast",
                                              destination: route["dst"] as? String ?? "", device: route["dev"] as? String,
                                              table: table))
                }
            }
        }
        return state
    }

    static func number(_ text: String) -> UInt32? {
        text.hasPrefix("0x") ? UInt32(text.dropFirst(2), radix: 16) : UInt32(text)
    }

    private func json(_ argv: [String]) throws(RuleReaderError) -> [[String: Any]] {
        let full = namespacePath.map { NetworkNamespace(path: $0).nsenterPrefix + argv } ?? argv
        let out: ProcessOutput
        do { out = try runProcess(full) } catch {
            throw .commandFailed(command: full.joined(separator: " "), status: -1, stderr: "\(error)")
        }
        guard out.status == 0 else { throw .commandFailed(command: full.joined(separator: " "), status: out.status, stderr: out.stderr) }
        let trimmed = out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { return [] }
        guard let value = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [[String: Any]] else {
            throw .commandFailed(command: full.joined(separator: " "), status: out.status, stderr: "unexpected output: \(trimmed.prefix(80))")
        }
        return value
    }
}
