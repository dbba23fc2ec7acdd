import Foundation
import NetfilterModel

/// Runtime inputs istio-iptables itself reads from the pod, gathered on a live read so `verify` checks
/// against what the pod really had: its resolv.conf nameservers and whether it has a global IPv6 address.
public struct RuntimeInputs: Sendable, Hashable {
    public var nameservers: [String] = []
    public var hasGlobalIPv6: Bool?
    public init() {}

    /// Reads what is reachable: with a pid, the process's `/etc/resolv.conf` through `/proc/PID/root`;
    /// in a namespace (or here), the interfaces' IPv6 addresses through `ip -j -6 addr`.
    public static func gather(pid: Int32?, namespacePath: String?) -> RuntimeInputs {
        var inputs = RuntimeInputs()
        let resolv = pid.map { "/proc/\($0)/root/etc/resolv.conf" } ?? (namespacePath == nil ? "/etc/resolv.conf" : nil)
        if let resolv, let text = try? String(contentsOfFile: resolv, encoding: .utf8) {
            inputs.nameservers = nameservers(inResolvConf: text)
        }
        let argv = (namespacePath.map { NetworkNamespace(path: $0).nsenterPrefix } ?? []) + ["ip", "-j", "-6", "addr", "show", "scope", "global"]
        if let out = try? runProcess(argv), out.status == 0,
           let data = out.stdout.data(using: .utf8),
           let links = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] {
            inputs.hasGlobalIPv6 = links.contains { ($0["addr_info"] as? [[String: Any]])?.isEmpty == false }
        }
        return inputs
    }

    /// `nameserver` lines of a resolv.conf, as istio-iptables reads them.
    public static func nameservers(inResolvConf text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2, words[0] == "nameserver", IPAddress(words[1]) != nil else { return nil }
            return String(words[1])
        }
    }
}
