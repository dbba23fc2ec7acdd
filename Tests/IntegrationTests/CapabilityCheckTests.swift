import Foundation
import Testing
import TestSupport

/// The privilege check tells a process that lacks CAP_NET_ADMIN / CAP_NET_RAW to get them, and one that holds them
/// (UID 1337 with ambient capabilities) what really stands in the way, creating no table either way (issue 10).
@Suite("capability check")
struct CapabilityCheckTests {
    /// As istio-proxy runs, but with CAP_NET_ADMIN and CAP_NET_RAW (inheritable and ambient, so they survive exec).
    static let withCapabilities = ["setpriv", "--reuid=1337", "--regid=1337", "--clear-groups",
                                   "--inh-caps=+net_admin,+net_raw", "--ambient-caps=+net_admin,+net_raw"]
    static let withoutCapabilities = ["setpriv", "--reuid=1337", "--regid=1337", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]

    static func names(_ ns: TestNamespace) throws -> (v4: String, v6: String) {
        (try ns.mustRun(["cat", "/proc/net/ip_tables_names"]), try ns.mustRun(["cat", "/proc/net/ip6_tables_names"]))
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func holdingTheCapabilitiesIsNotToldToAddThem() throws {
        let ns = try TestNamespace()
        // Only nat exists: any probe of raw, mangle or filter would add them to the names file.
        try ns.mustRun(["iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15001"])
        let before = try Self.names(ns)
        #expect(before.v4 == "nat\n")
        let probe = try ns.run(Self.withCapabilities + ["sh", "-c", "grep CapEff /proc/self/status"])
        #expect(probe.stdout.contains("0000000000003000"), "setpriv did not grant the capabilities: \(probe.stdout)")
        for backend in ["legacy", "auto"] {
            let r = try ns.run(Self.withCapabilities + [Binary.path, "show", "--backend", backend, "--format", "save"])
            #expect(r.status == 2, "\(backend): \(r.stderr)")
            #expect(r.stderr.hasPrefix("iptaudit: cannot list the legacy tables: cannot read /proc/thread-self/net/ip_tables_names"), "\(r.stderr)")
            #expect(r.stderr.contains("holds CAP_NET_ADMIN and CAP_NET_RAW") && r.stderr.contains("UID 0"), "\(r.stderr)")
            #expect(!r.stderr.contains("needs CAP_NET_ADMIN") && r.stderr.contains("--backend nft"), "\(r.stderr)")
        }
        // nf_tables alone needs no root-only file: --backend nft reads it in the same setting.
        try ns.mustRun(["iptables-nft", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15006"])
        let nft = try ns.run(Self.withCapabilities + [Binary.path, "show", "--backend", "nft", "--format", "save"])
        #expect(nft.status == 0, "\(nft.stderr)")
        #expect(nft.stdout.contains("-A OUTPUT -p tcp -j REDIRECT --to-ports 15006"))
        // iptables-legacy-save, in the same setting, stops on the same file.
        let save = try ns.run(Self.withCapabilities + ["iptables-legacy-save"])
        #expect(save.status != 0 && save.stderr.contains("ip_tables_names"), "\(save.stderr)")
        #expect(try Self.names(ns) == before)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func lackingTheCapabilitiesIsToldToAddThem() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15001"])
        let before = try Self.names(ns)
        let r = try ns.run(Self.withoutCapabilities + [Binary.path, "show", "--backend", "legacy"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("needs CAP_NET_ADMIN"), "\(r.stderr)")
        #expect(!r.stderr.contains("holds CAP_NET_ADMIN"), "\(r.stderr)")
        #expect(try Self.names(ns) == before)
    }
}
