#if canImport(Glibc)
import Glibc
#endif
import NetfilterModel

/// The nf_tables tables of a network namespace (`nft list tables`), listed over netlink (NFT_MSG_GETTABLE dump,
/// `NFPROTO_UNSPEC`) without starting `nft` and without creating or changing anything.
///
/// Used to tell which rule stores hold anything: iptables-nft tables (family `ip`/`ip6`, named like the
/// x_tables tables) and Istio's native nftables tables (`istio-*`).
public struct NftablesInventory: Sendable, Hashable {
    public typealias TableFamily = NftFamily

    public struct TableEntry: Sendable, Hashable {
        public var family: TableFamily
        public var name: String
        /// `NFTA_TABLE_FLAGS` (`NFT_TABLE_F_DORMANT`, `NFT_TABLE_F_OWNER`, ...).
        public var flags: UInt32
        /// `NFTA_TABLE_USE`: how many chains the table holds.
        public var chainCount: UInt32
        /// `NFTA_TABLE_HANDLE`.
        public var handle: UInt64?

        public init(family: TableFamily, name: String, flags: UInt32 = 0, chainCount: UInt32 = 0, handle: UInt64? = nil) {
            self.family = family
            self.name = name
            self.flags = flags
            self.chainCount = chainCount
            self.handle = handle
        }
    }

    /// The tables, in the kernel's order.
    public var tables: [TableEntry]
    /// False when nf_tables was not asked because it is a kernel module that is not loaded: asking would load it
    /// (a side effect), and an unloaded nf_tables holds no tables.
    public var queried: Bool

    public init(tables: [TableEntry] = [], queried: Bool = true) {
        self.tables = tables
        self.queried = queried
    }

    /// The table names iptables-nft uses: the x_tables names in families `ip` (IPv4) and `ip6` (IPv6).
    public static let iptablesTableNames: Set<String> = ["filter", "nat", "mangle", "raw", "security"]

    /// iptables-nft's tables of a family (`ip filter`, `ip6 nat`, ...), in the kernel's order. Non-empty means
    /// `iptables-nft-save` (`ip6tables-nft-save`) has something to print; empty means there is no need to run it.
    public func iptablesNftTables(family: Family) -> [TableName] {
        let nft = TableFamily(family)
        return tables.filter { $0.family == nft && Self.iptablesTableNames.contains($0.name) }.map { TableName($0.name) }
    }

    /// Whether nf_tables holds iptables-nft tables of `family`.
    public func holdsIptablesNftTables(family: Family) -> Bool { !iptablesNftTables(family: family).isEmpty }

    /// Tables iptables-nft does not own: native nftables (Istio's `--native-nftables` tables among them), read
    /// through libnftables rather than `iptables-nft-save`.
    public var nativeTables: [TableEntry] {
        tables.filter { !(($0.family == .ip || $0.family == .ip6) && Self.iptablesTableNames.contains($0.name)) }
    }

    /// Lists the calling thread's namespace. A kernel without nf_tables (EPROTONOSUPPORT, EOPNOTSUPP) is an empty inventory.
    public static func read() throws(RuleReaderError) -> NftablesInventory {
        guard nfTablesMayHoldTables() else { return NftablesInventory(queried: false) }
        let dumped: [(NfgenHeader, NetlinkAttributes)]
        do {
            dumped = try NetlinkSocket(.netfilter).dumpNftTables()
        } catch {
            if [EPROTONOSUPPORT, EOPNOTSUPP, ENOENT].contains(error.errno) { return NftablesInventory() }
            throw error.readerError
        }
        return NftablesInventory(tables: dumped.compactMap { header, a in
            guard let family = TableFamily(nfproto: header.family), let name = a.string(KernelABI.nftaTableName) else { return nil }
            return TableEntry(family: family, name: name, flags: a.bigEndianU32(KernelABI.nftaTableFlags) ?? 0,
                              chainCount: a.bigEndianU32(KernelABI.nftaTableUse) ?? 0, handle: a.bigEndianU64(KernelABI.nftaTableHandle))
        })
    }

    /// Lists the namespace at `namespacePath` (on `NetworkNamespace.perform`'s thread), or this one when nil.
    public static func read(namespacePath: String?) throws(RuleReaderError) -> NftablesInventory {
        try NetworkNamespace.performing(at: namespacePath) { () throws(RuleReaderError) in try read() }
    }

    /// False only when nf_tables is known to be a loadable module that is not loaded: then no namespace has
    /// tables, and a netlink request would make the kernel load it. Built in, loaded, or unknown: true.
    static func nfTablesMayHoldTables() -> Bool {
        if access("/sys/module/nf_tables", F_OK) == 0 { return true }
        var name = utsname()
        guard uname(&name) == 0 else { return true }
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let builtin = readSmallFile("/lib/modules/\(release)/modules.builtin") else { return true }
        if builtin.contains("/nf_tables.ko") { return true }
        // Listed as a module of this kernel and absent from /sys/module: not loaded.
        guard let modules = readSmallFile("/lib/modules/\(release)/modules.dep") else { return true }
        return !modules.contains("/nf_tables.ko")
    }
}

/// A whole file as UTF-8 text through Glibc (no Foundation in the readers' kernel-facing files); nil when unreadable.
func readSmallFile(_ path: String, limit: Int = 16 << 20) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while bytes.count < limit {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if n == 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

extension NftFamily {
    init?(nfproto: UInt8) {
        switch nfproto {
        case KernelABI.nfprotoIPv4: self = .ip
        case KernelABI.nfprotoIPv6: self = .ip6
        case KernelABI.nfprotoInet: self = .inet
        case KernelABI.nfprotoARP: self = .arp
        case KernelABI.nfprotoBridge: self = .bridge
        case KernelABI.nfprotoNetdev: self = .netdev
        default: return nil
        }
    }
}
