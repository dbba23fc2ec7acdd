private import CIPTC
private import DynamicLoading
#if canImport(Glibc)
import Glibc
#endif
import NetfilterModel

/// Reads the live legacy x_tables (ip_tables / ip6_tables) of the calling thread's network namespace through
/// libiptc, the library behind `iptables-legacy-save`. Wrap in `NetworkNamespace.perform` to read a pod.
///
/// Read-only, and careful never to create anything: asking the kernel for a table that does not exist yet makes it
/// instantiate that table in the namespace (and changes what iptables-legacy-save shows afterwards). So only tables
/// listed in `/proc/thread-self/net/ip_tables_names` (`ip6_tables_names`) are opened; a missing table is simply
/// absent from the result. The xtables lock is not taken: reading is one atomic getsockopt snapshot per table.
public struct LegacyTableReader: RulesetReader {
    /// Whether `-m set` matches get their set names from the kernel (one ipset getsockopt per set index).
    /// When a lookup fails the name is kept as `#INDEX`.
    public var resolvesSetNames: Bool

    public init(resolvesSetNames: Bool = true) {
        self.resolvesSetNames = resolvesSetNames
    }

    public var sourceDescription: String { "legacy x_tables (libiptc)" }

    public func read(_ request: ReadRequest) throws(RuleReaderError) -> Ruleset {
        var ruleset = Ruleset()
        let setNames = IPSetNameResolver(enabled: resolvesSetNames)
        var seenFamilies = Set<Family>()
        for family in request.families where seenFamilies.insert(family).inserted {
            ruleset.backends[family] = .legacy
            // In the kernel's order, as iptables-save prints them: the names file lists the newest table first.
            var seenTables = Set<TableName>()
            for name in try Self.presentTables(family) where request.tables.contains(name) && seenTables.insert(name).inserted {
                ruleset.tables.append(try Self.readTable(name, family: family, setNames: setNames))
            }
        }
        let populated = ruleset.tables.filter { $0.ruleCount > 0 || $0.chains.contains { !$0.isBuiltin } }
        for family in Set(populated.map(\.family)) { ruleset.populatedBackends[family] = [.legacy] }
        return ruleset
    }

    /// The tables the kernel has instantiated in the calling thread's namespace, in the order it lists them.
    ///
    /// `thread-self`, not `self`: `/proc/self/net` shows the namespace of the process's main thread, while this
    /// may run on a thread that entered another namespace. A missing file means ip_tables is not loaded at all.
    static func presentTables(_ family: Family) throws(RuleReaderError) -> [TableName] {
        let path = family == .ipv4 ? "/proc/thread-self/net/ip_tables_names" : "/proc/thread-self/net/ip6_tables_names"
        switch readSmallFile(path) {
        case .success(let text):
            return text.split(separator: "\n").map { TableName(String($0)) }
        case .failure(let err) where err.code == ENOENT:
            return []
        case .failure(let err) where err.code == EACCES || err.code == EPERM:
            // The names file is root-only (0440). With CAP_NET_ADMIN and CAP_NET_RAW libiptc would answer, but only
            // by opening tables one by one, and opening a missing table creates it: iptables-legacy-save stops too.
            let detail = "cannot read \(path): \(String(cString: strerror(err.code)))"
            if let caps = Capabilities.current(), caps.holds(Capabilities.netAdmin), caps.holds(Capabilities.netRaw) {
                throw .tableListRootOnly(detail: detail)
            }
            throw .insufficientPrivilege(detail: detail)
        case .failure(let err):
            throw .unavailable(family: family, table: nil, reason: "cannot read \(path): \(String(cString: strerror(err.code)))")
        }
    }

    /// Reads one table under the libiptc lock; every byte is copied out before the handle is freed.
    static func readTable(_ name: TableName, family: Family, setNames: IPSetNameResolver) throws(RuleReaderError) -> Table {
        try libiptcLock.withLock { () throws(RuleReaderError) -> Table in
            let handle = try TableHandle(family: family, table: name)
            var chains: [Chain] = []
            for chainName in handle.chainNames() {
                var chain = Chain(name: ChainName(chainName))
                // Only a hook's name can be a built-in chain: libiptc's lookup is not asked for 40,000 kube-proxy chains.
                if chainName.utf8.count <= longestBuiltinName, builtinNames.contains(chainName), handle.isBuiltin(chainName) {
                    guard let (policyName, counters) = handle.policy(chainName) else {
                        throw .unavailable(family: family, table: name, reason: "built-in chain \(chainName) has no policy")
                    }
                    guard let policy = Policy(rawValue: policyName) else {
                        throw .unavailable(family: family, table: name,
                                           reason: "built-in chain \(chainName) has policy \(policyName), which iptaudit cannot represent")
                    }
                    chain.policy = policy
                    chain.policyCounters = counters
                }
                do throws(EntryDecodingError) {
                    try handle.forEachEntry(chainName) { (entry, target) throws(EntryDecodingError) in
                        chain.rules.append(try LegacyEntryDecoder.decodeRule(
                            entry: entry, family: family, standardTarget: target, setName: setNames.name))
                    }
                } catch {
                    throw .unavailable(family: family, table: name,
                                       reason: "chain \(chainName), rule \(chain.rules.count + 1): \(error.reason)")
                }
                chains.append(chain)
            }
            return Table(family: family, name: name, chains: chains)
        }
    }
}

/// The names a built-in chain can have (libiptc says which of them a table has).
private let builtinNames: Set<String> = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]
/// Longer names are not hashed at all: kube-proxy's 40,000 chain names are all longer.
private let longestBuiltinName = builtinNames.map(\.utf8.count).max() ?? 0

// MARK: - libiptc handle

/// libiptc keeps global state (the last failing function for `iptc_strerror`, its own caches): one call at a time.
private let libiptcLock = ProcessMutex()

/// libip4tc's and libip6tc's entry points, loaded with `SharedLibrary` (not linked) so that only a legacy read needs
/// them. Each family's library is loaded once, on its first read.
private struct IPTCLibrary: @unchecked Sendable {
    struct IPv4 {
        let initialize: iptaudit_iptc_init_fn
        let free: iptaudit_iptc_free_fn
        let strerror: iptaudit_iptc_strerror_fn
        let firstChain: iptaudit_iptc_first_chain_fn
        let nextChain: iptaudit_iptc_next_chain_fn
        let builtin: iptaudit_iptc_builtin_fn
        let policy: iptaudit_iptc_get_policy_fn
        let firstRule: iptaudit_iptc_first_rule_fn
        let nextRule: iptaudit_iptc_next_rule_fn
        let target: iptaudit_iptc_get_target_fn
    }
    struct IPv6 {
        let initialize: iptaudit_ip6tc_init_fn
        let free: iptaudit_ip6tc_free_fn
        let strerror: iptaudit_ip6tc_strerror_fn
        let firstChain: iptaudit_ip6tc_first_chain_fn
        let nextChain: iptaudit_ip6tc_next_chain_fn
        let builtin: iptaudit_ip6tc_builtin_fn
        let policy: iptaudit_ip6tc_get_policy_fn
        let firstRule: iptaudit_ip6tc_first_rule_fn
        let nextRule: iptaudit_ip6tc_next_rule_fn
        let target: iptaudit_ip6tc_get_target_fn
    }
    let ipv4: IPv4?
    let ipv6: IPv6?

    /// Each process's one load per family (Swift globals: initialised once, thread-safely, on first use).
    static let sharedIPv4: Result<IPTCLibrary, RuleReaderError> = Result { () throws(RuleReaderError) in try loadIPv4() }
    static let sharedIPv6: Result<IPTCLibrary, RuleReaderError> = Result { () throws(RuleReaderError) in try loadIPv6() }

    static func shared(_ family: Family) throws(RuleReaderError) -> IPTCLibrary {
        try (family == .ipv4 ? sharedIPv4 : sharedIPv6).get()
    }

    /// dlopen's failure as a read error of the family.
    private static func load(_ family: Family, _ body: (SharedLibrary) throws(SharedLibrary.LoadFailure) -> IPTCLibrary) throws(RuleReaderError) -> IPTCLibrary {
        do {
            let soname = family == .ipv4 ? IPTAUDIT_IP4TC_SONAME : IPTAUDIT_IP6TC_SONAME
            return try body(try SharedLibrary(soname, installHint: "install libip4tc2 and libip6tc2 to read legacy x_tables"))
        } catch {
            throw .unavailable(family: family, table: nil, reason: error.message)
        }
    }

    private static func loadIPv4() throws(RuleReaderError) -> IPTCLibrary {
        try load(.ipv4) { (l) throws(SharedLibrary.LoadFailure) in
            IPTCLibrary(ipv4: IPv4(initialize: try l.symbol("iptc_init"), free: try l.symbol("iptc_free"), strerror: try l.symbol("iptc_strerror"),
                                   firstChain: try l.symbol("iptc_first_chain"), nextChain: try l.symbol("iptc_next_chain"),
                                   builtin: try l.symbol("iptc_builtin"), policy: try l.symbol("iptc_get_policy"),
                                   firstRule: try l.symbol("iptc_first_rule"), nextRule: try l.symbol("iptc_next_rule"),
                                   target: try l.symbol("iptc_get_target")),
                        ipv6: nil)
        }
    }

    private static func loadIPv6() throws(RuleReaderError) -> IPTCLibrary {
        try load(.ipv6) { (l) throws(SharedLibrary.LoadFailure) in
            IPTCLibrary(ipv4: nil,
                        ipv6: IPv6(initialize: try l.symbol("ip6tc_init"), free: try l.symbol("ip6tc_free"), strerror: try l.symbol("ip6tc_strerror"),
                                   firstChain: try l.symbol("ip6tc_first_chain"), nextChain: try l.symbol("ip6tc_next_chain"),
                                   builtin: try l.symbol("ip6tc_builtin"), policy: try l.symbol("ip6tc_get_policy"),
                                   firstRule: try l.symbol("ip6tc_first_rule"), nextRule: try l.symbol("ip6tc_next_rule"),
                                   target: try l.symbol("ip6tc_get_target")))
        }
    }
}

/// One `iptc_init` snapshot of a table; freed with `iptc_free` when the last reference goes. Never escapes a read.
private final class TableHandle {
    let family: Family
    let raw: OpaquePointer
    private let v4: IPTCLibrary.IPv4!
    private let v6: IPTCLibrary.IPv6!

    /// `iptc_init` / `ip6tc_init`. The caller holds `libiptcLock`.
    init(family: Family, table: TableName) throws(RuleReaderError) {
        self.family = family
        let library = try IPTCLibrary.shared(family)
        v4 = library.ipv4
        v6 = library.ipv6
        errno = 0
        let handle = family == .ipv4 ? v4.initialize(table.rawValue) : v6.initialize(table.rawValue)
        guard let handle else {
            let err = errno
            let call = family == .ipv4 ? "iptc_init" : "ip6tc_init"
            if err == EPERM || err == EACCES {
                // libiptc's own message for these says "you must be root", which is not the whole story in a pod.
                throw .insufficientPrivilege(detail: "\(call)(\(table)): \(String(cString: strerror(err)))")
            }
            let message = family == .ipv4 ? v4.strerror(err) : v6.strerror(err)
            throw .unavailable(family: family, table: table,
                               reason: "\(call): \(message.map { String(cString: $0) } ?? String(cString: strerror(err)))")
        }
        raw = handle
    }

    deinit {
        if family == .ipv4 { v4.free(raw) } else { v6.free(raw) }
    }

    /// Each chain's name by where libiptc keeps it: `iptc_get_target` answers a jump with that same pointer, so a
    /// jump's target is looked up instead of decoded again (kube-proxy's tables jump to chains 60,000 times).
    private var nameAt: [UnsafePointer<CChar>: String] = [:]

    /// Chains in libiptc's order (built-ins in hook order, then user chains by name), which iptables-save keeps.
    func chainNames() -> [String] {
        var names: [String] = []
        var next = family == .ipv4 ? v4.firstChain(raw) : v6.firstChain(raw)
        while let name = next {
            let text = String(cString: name)
            nameAt[name] = text
            names.append(text)
            next = family == .ipv4 ? v4.nextChain(raw) : v6.nextChain(raw)
        }
        return names
    }

    func isBuiltin(_ chain: String) -> Bool {
        (family == .ipv4 ? v4.builtin(chain, raw) : v6.builtin(chain, raw)) != 0
    }

    func policy(_ chain: String) -> (String, Counters)? {
        var counters = xt_counters()
        let name = family == .ipv4 ? v4.policy(chain, &counters, raw) : v6.policy(chain, &counters, raw)
        guard let name else { return nil }
        return (String(cString: name), Counters(packets: counters.pcnt, bytes: counters.bcnt))
    }

    /// Each rule of a chain, in order: the entry's bytes in libiptc's memory (valid only during the call, so the
    /// body copies what it keeps) and `iptc_get_target`'s name for its verdict ("" for a rule without a target).
    func forEachEntry(_ chain: String,
                      _ body: (UnsafeRawBufferPointer, String) throws(EntryDecodingError) -> Void) throws(EntryDecodingError) {
        switch family {
        case .ipv4:
            var next = v4.firstRule(chain, raw)
            while let entry = next {
                let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(entry), count: Int(entry.pointee.next_offset))
                try body(bytes, targetName(v4.target(entry, raw), entry: bytes))
                next = v4.nextRule(entry, raw)
            }
        case .ipv6:
            var next = v6.firstRule(chain, raw)
            while let entry = next {
                let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(entry), count: Int(entry.pointee.next_offset))
                try body(bytes, targetName(v6.target(entry, raw), entry: bytes))
                next = v6.nextRule(entry, raw)
            }
        }
    }

    /// A jump's chain as `chainNames` decoded it; a verdict decoded once (libiptc answers with its own constant
    /// strings); "" for a module target, whose name lies in the entry and which the decoder reads there.
    private func targetName(_ name: UnsafePointer<CChar>?, entry: UnsafeRawBufferPointer) -> String {
        guard let name else { return "" }
        if let known = nameAt[name] { return known }
        let at = UnsafeRawPointer(name)
        if let start = entry.baseAddress, at >= start, at < start + entry.count { return "" }
        let text = String(cString: name)
        nameAt[name] = text
        return text
    }
}

private struct Errno: Error {
    var code: Int32
}

/// Reads a /proc file (whose size stat reports as 0) to the end.
private func readSmallFile(_ path: String) -> Result<String, Errno> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return .failure(Errno(code: errno)) }
    defer { close(fd) }
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return .failure(Errno(code: errno))
        }
        if n == 0 { break }
        data.append(contentsOf: buffer[0..<n])
    }
    return .success(String(decoding: data, as: UTF8.self))
}

// MARK: - ipset names

/// Set names for `-m set`, which the kernel stores only as an index: `IP_SET_OP_GET_BYINDEX` on a raw socket,
/// as libxt_set does. The socket belongs to the calling thread's namespace, where the sets live.
final class IPSetNameResolver {
    private let enabled: Bool
    private var socketFD: Int32 = -1
    private var version: UInt32?
    private var cache: [UInt16: String?] = [:]

    init(enabled: Bool) { self.enabled = enabled }

    deinit { if socketFD >= 0 { close(socketFD) } }

    func name(_ index: UInt16) -> String? {
        guard enabled else { return nil }
        if let cached = cache[index] { return cached }
        let name = lookUp(index)
        cache[index] = name
        return name
    }

    private func lookUp(_ index: UInt16) -> String? {
        if socketFD < 0 {
            socketFD = socket(AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
            guard socketFD >= 0 else { return nil }
        }
        if version == nil {
            var request = ip_set_req_version()
            request.op = UInt32(IP_SET_OP_VERSION)
            var size = socklen_t(MemoryLayout<ip_set_req_version>.size)
            guard getsockopt(socketFD, Int32(SOL_IP), SO_IP_SET, &request, &size) == 0 else { return nil }
            version = request.version
        }
        var request = ip_set_req_get_set()
        request.op = UInt32(IP_SET_OP_GET_BYINDEX)
        request.version = version ?? UInt32(IPSET_PROTOCOL)
        request.set.index = index
        var size = socklen_t(MemoryLayout<ip_set_req_get_set>.size)
        guard getsockopt(socketFD, Int32(SOL_IP), SO_IP_SET, &request, &size) == 0,
              Int(size) == MemoryLayout<ip_set_req_get_set>.size else { return nil }
        let name = withUnsafeBytes(of: request.set.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return name.isEmpty ? nil : name
    }
}
