import NetfilterModel

/// Reads the native nf_tables ruleset of a network namespace in-process through libnftables (the library
/// behind `nft`): what `nft -j -a list ruleset` prints, decoded into `NftTable`s. This is where Istio's
/// `--native-nftables` mode puts its rules (`inet istio-proxy-nat`, ...), which no iptables reader sees.
///
/// Read-only: libnftables' `list ruleset` sends only GET requests (GETGEN, GETTABLE, GETCHAIN, GETSET,
/// GETSETELEM, GETFLOWTABLE, GETOBJ, GETRULE) on one netlink socket; no child process, no lock file, nothing
/// created, no packet. The netlink table list is asked first, so a namespace without tables (or a kernel
/// whose nf_tables module is not loaded, which asking would load) never reaches libnftables, and a missing
/// CAP_NET_ADMIN is reported before libnftables would print its own complaint on stderr.
public struct NftablesReader: Sendable {
    /// The namespace file (`/proc/PID/ns/net`, `/run/netns/NAME`); nil reads the current namespace.
    public var namespacePath: String?

    public init(namespacePath: String? = nil) {
        self.namespacePath = namespacePath
    }

    public var sourceDescription: String {
        "native nf_tables via libnftables, " + (namespacePath.map { "network namespace \($0)" } ?? "this network namespace")
    }

    /// Every table of every family, in the kernel's order; empty when the namespace has none.
    public func read() throws(RuleReaderError) -> [NftTable] {
        try NetworkNamespace.performing(at: namespacePath) { () throws(RuleReaderError) -> [NftTable] in
            try Self.readCurrentNamespace()
        }
    }

    /// Reads the calling thread's namespace: the netlink inventory, then libnftables on this same thread, whose
    /// socket then belongs to this namespace.
    static func readCurrentNamespace() throws(RuleReaderError) -> [NftTable] {
        guard !(try NftablesInventory.read().tables.isEmpty) else { return [] }
        let json = try NftablesContext.withLibraryLock { () throws(RuleReaderError) -> [UInt8] in
            try NftablesContext().run("list ruleset")
        }
        return try NftablesListing.decode(json)
    }
}

extension LiveRulesetReader {
    /// The namespace's native nf_tables rules (Istio's `--native-nftables` tables among them), read through
    /// libnftables; the iptables view (`read(_:)`) does not include them.
    public func readNativeNftables() throws(RuleReaderError) -> [NftTable] {
        try NftablesReader(namespacePath: namespacePath).read()
    }
}
