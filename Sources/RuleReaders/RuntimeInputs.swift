import NetfilterModel

/// Runtime inputs istio-iptables itself reads from the pod, gathered on a live read so `verify` checks
/// against what the pod really had: its resolv.conf nameservers and whether it has a global IPv6 address.
public struct RuntimeInputs: Sendable, Hashable {
    /// nil: not read. Only a pid reaches the pod's resolv.conf: in a namespace entered with `nsenter -n` (or
    /// `--netns`) /etc/resolv.conf is still the node's, which is not the pod's.
    public var nameservers: [String]?
    public var hasGlobalIPv6: Bool?
    /// The process's `/etc/group` (name to gid), read through `/proc/PID/root`: for the istio-proxy container it is
    /// the proxyv2 image's, the one istio-init's iptables resolved owner-group names in. nil: not read.
    public var groups: [String: UInt32]?
    public init() {}

    /// Reads what is reachable: with a pid, the process's `/etc/resolv.conf` through `/proc/PID/root`;
    /// in a namespace (or here), the interfaces' IPv6 addresses over rtnetlink (RTM_GETADDR, as
    /// `ip -6 addr show scope global` lists them). Starts no child process; nil where a read failed or
    /// nothing could be read.
    public static func gather(pid: Int32?, namespacePath: String?) -> RuntimeInputs {
        var inputs = RuntimeInputs()
        if let pid, let text = readSmallFile("/proc/\(pid)/root/etc/resolv.conf", limit: 1 << 20) {
            inputs.nameservers = nameservers(inResolvConf: text)
        }
        if let pid, let text = readSmallFile("/proc/\(pid)/root/etc/group", limit: 1 << 22) {
            inputs.groups = groups(inGroupFile: text)
        }
        let addresses = try? NetworkNamespace.performing(at: namespacePath) { () throws(RuleReaderError) in
            try NetlinkRouting.addresses(family: .ipv6)
        }
        inputs.hasGlobalIPv6 = addresses.map { $0.contains(where: \.isGlobal) }
        return inputs
    }

    /// `name:password:gid:members` lines of an /etc/group, as getgrnam reads them (the first entry of a name wins).
    public static func groups(inGroupFile text: String) -> [String: UInt32] {
        var out: [String: UInt32] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 3, !fields[0].isEmpty, let gid = UInt32(fields[2]), out[String(fields[0])] == nil else { continue }
            out[String(fields[0])] = gid
        }
        return out
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
