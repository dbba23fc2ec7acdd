import Foundation
import NetfilterModel
import RuleReaders
import TestSupport
import Testing

@Suite("Legacy reader: reading never changes the namespace")
struct LegacyReaderReadOnlyTests {
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func readingAnEmptyNamespaceCreatesNoTable() throws {
        let ns = try TestNamespace()
        #expect(try LegacyLive.liveTables(ns, .ipv4).isEmpty)
        #expect(try LegacyLive.liveTables(ns, .ipv6).isEmpty)

        let ruleset = try LegacyLive.read(ns)
        #expect(ruleset.tables.isEmpty)
        #expect(ruleset.backends == [.ipv4: .legacy, .ipv6: .legacy])
        #expect(ruleset.populatedBackends.isEmpty)

        // iptc_init on a missing table would have made the kernel instantiate it here.
        #expect(try LegacyLive.liveTables(ns, .ipv4).isEmpty)
        #expect(try LegacyLive.liveTables(ns, .ipv6).isEmpty)
        #expect(try LegacyLive.liveTables(ns, .ipv4).contains(.nat) == false)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func onlyTheTablesThatExistAreReadAndNoneIsAdded() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["iptables-legacy", "-t", "mangle", "-A", "OUTPUT", "-j", "MARK", "--set-mark", "7"])
        let ruleset = try LegacyLive.read(ns)
        #expect(ruleset.tables.map(\.name) == [.mangle])
        #expect(ruleset.populatedBackends == [.ipv4: [.legacy]])
        #expect(try LegacyLive.liveTables(ns, .ipv4) == [.mangle])
        #expect(try LegacyLive.liveTables(ns, .ipv6).isEmpty)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func countersAreReadAndLeftAlone() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        try ns.mustRun(["iptables-legacy-restore"], stdin: """
            *filter
            -A INPUT -i lo -p udp -m udp --dport 9
            -A OUTPUT -o lo -p udp -m udp --dport 9
            COMMIT

            """)
        // Three datagrams to the discard port on loopback: each passes OUTPUT and INPUT once.
        try ns.mustRun(["bash", "-c", "for i in 1 2 3; do echo hello > /dev/udp/127.0.0.1/9; done"])

        let before = withoutSaveComments(try ns.mustRun(["iptables-legacy-save", "-c"]))
        let ruleset = try LegacyLive.read(ns)
        let after = withoutSaveComments(try ns.mustRun(["iptables-legacy-save", "-c"]))
        #expect(before == after)

        let filter = try #require(ruleset.table(.filter, family: .ipv4))
        #expect(filter.chain(.output)?.rules.first?.counters.packets == 3)
        #expect(filter.chain(.input)?.rules.first?.counters.packets == 3)
        #expect((filter.chain(.output)?.policyCounters.packets ?? 0) >= 3)
        try LegacyLive.expectIdenticalToSave(ruleset, in: ns, family: .ipv4, counters: true)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func withoutNetAdminTheErrorSaysWhatIsMissing() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-j", "RETURN"])
        // Capabilities are per thread: drop CAP_NET_ADMIN and CAP_NET_RAW on perform's own thread only.
        let result = try NetworkNamespace(path: ns.path).perform { () -> Result<Ruleset, RuleReaderError> in
            guard Capabilities.dropNetworkAdministration() else { return .failure(.namespace(path: "", reason: "capset failed")) }
            do throws(RuleReaderError) {
                return .success(try LegacyTableReader().read(ReadRequest(tables: [.nat], families: [.ipv4])))
            } catch {
                return .failure(error)
            }
        }
        guard case .failure(.insufficientPrivilege(let detail)) = result else {
            Issue.record("expected insufficientPrivilege, got \(result)")
            return
        }
        #expect(detail.contains("iptc_init(nat)"))
        #expect(!detail.contains("you must be root"))
        #expect("\(RuleReaderError.insufficientPrivilege(detail: detail))".contains("CAP_NET_ADMIN"))
    }
}

@Suite("Network namespaces: entered by one thread only")
struct NetworkNamespaceTests {
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func performRunsInsideWhileTheCallerStaysOutside() throws {
        let ns = try TestNamespace()
        let target = try #require(NetworkNamespace.inode(of: ns.path))
        let mine = try #require(NetworkNamespace.currentInode())
        #expect(target != mine)
        let inside = try NetworkNamespace(path: ns.path).perform { NetworkNamespace.currentInode() }
        #expect(inside == target)
        #expect(NetworkNamespace.currentInode() == mine)
        #expect(NetworkNamespace(path: ns.path).inode == target)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func namespaceHeldByAProcessIsReadThroughItsPID() throws {
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        holder.arguments = ["--net", "sleep", "60"]
        try holder.run()
        defer {
            // SIGKILL: the test runner's signal mask can leave SIGTERM blocked in the child.
            kill(holder.processIdentifier, SIGKILL)
            holder.waitUntilExit()
        }
        let pid = holder.processIdentifier
        let namespace = NetworkNamespace(pid: pid)
        let mine = try #require(NetworkNamespace.currentInode())
        // unshare execs sleep in the same process once it has its own namespace.
        var waited = 0
        while namespace.inode == nil || namespace.inode == mine, waited < 100 {
            usleep(50_000)
            waited += 1
        }
        try #require(namespace.inode != nil && namespace.inode != mine, "the holder never got its own namespace")

        let lock = NSTemporaryDirectory() + "/iptaudit-pid-\(pid).lock"
        defer { try? FileManager.default.removeItem(atPath: lock) }
        let load = try runCommand(namespace.nsenterPrefix + ["iptables-legacy-restore"], stdin: """
            *nat
            :ISTIO_REDIRECT - [0:0]
            -A OUTPUT -p tcp -m owner ! --uid-owner 1337 -j ISTIO_REDIRECT
            -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
            COMMIT

            """, environment: ["XTABLES_LOCKFILE": lock])
        try #require(load.status == 0, "\(load.stderr)")

        let ruleset = try namespace.perform { try LegacyTableReader().read(ReadRequest(families: [.ipv4])) }
        #expect(ruleset.tables.map(\.name) == [.nat])
        let nat = try #require(ruleset.table(.nat, family: .ipv4))
        let save = try runCommand(namespace.nsenterPrefix + ["iptables-legacy-save", "-t", "nat"])
        #expect(LegacyLive.difference(expected: withoutSaveComments(save.stdout), actual: SaveSyntax.render(nat)) == nil)
        #expect(nat.chain("ISTIO_REDIRECT")?.rules.first?.target == .redirect(PortRewriteTarget(ports: 15001...15001)))
        #expect(NetworkNamespace.currentInode() == mine)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func aHelperStartedInsidePerformRunsInTheNamespace() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["iptables-legacy", "-A", "INPUT", "-j", "ACCEPT"])
        let namespace = NetworkNamespace(path: ns.path)
        let inode = try #require(namespace.inode)
        // No nsenter: the child inherits the namespace of the thread that spawned it.
        let link = try namespace.perform { try HelperProcess.run("readlink", ["/proc/self/ns/net"]) }
        #expect(link.stdout == "net:[\(inode)]\n")
        let names = try namespace.perform { try HelperProcess.run("cat", ["/proc/net/ip_tables_names"]) }
        #expect(names.stdout == "filter\n")
        #expect(try HelperProcess.run("readlink", ["/proc/self/ns/net"]).stdout != link.stdout, "the caller stayed where it was")
    }

    @Test func missingPathIsANamespaceError() {
        expectNamespaceError(NetworkNamespace(path: "/nonexistent/iptaudit/ns"), containing: "no such file")
    }

    @Test func missingProcessIsANamespaceError() {
        expectNamespaceError(NetworkNamespace(pid: Int32.max), containing: "no such process \(Int32.max)")
    }

    @Test func plainFileIsNotANamespace() throws {
        let path = NSTemporaryDirectory() + "/iptaudit-not-a-namespace-\(getpid())"
        try "x".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        expectNamespaceError(NetworkNamespace(path: path), containing: "not a namespace file")
    }

    @Test func otherNamespaceKindIsRefused() {
        expectNamespaceError(NetworkNamespace(path: "/proc/self/ns/uts"), containing: "not a network namespace (it is a uts namespace)")
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func errorsOfTheBodyPassThrough() throws {
        struct Marker: Error, Equatable {}
        let ns = try TestNamespace()
        #expect(throws: Marker()) { try NetworkNamespace(path: ns.path).perform { throw Marker() } }
    }

    private func expectNamespaceError(_ namespace: NetworkNamespace, containing text: String,
                                      sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try namespace.perform { 1 }
            Issue.record("entering \(namespace.path) succeeded", sourceLocation: sourceLocation)
        } catch let error as RuleReaderError {
            guard case .namespace(let path, let reason) = error else {
                Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
                return
            }
            #expect(path == namespace.path, sourceLocation: sourceLocation)
            #expect(reason.contains(text), "\(reason)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }
}

/// capget/capset on the calling thread (glibc exports both; `<sys/capability.h>` is libcap's, not needed here).
enum Capabilities {
    private struct Header {
        var version: UInt32 = 0x2008_0522  // _LINUX_CAPABILITY_VERSION_3
        var pid: Int32 = 0  // the calling thread
    }
    private struct Data {
        var effective: UInt32 = 0
        var permitted: UInt32 = 0
        var inheritable: UInt32 = 0
    }

    /// Clears CAP_NET_ADMIN (12) and CAP_NET_RAW (13) from the calling thread's effective set.
    static func dropNetworkAdministration() -> Bool {
        var header = Header()
        var data = [Data(), Data()]
        guard c_capget(&header, &data) == 0 else { return false }
        data[0].effective &= ~(UInt32(1) << 12 | UInt32(1) << 13)
        return c_capset(&header, &data) == 0
    }
}

@_silgen_name("capget") private func c_capget(_ header: UnsafeMutableRawPointer, _ data: UnsafeMutableRawPointer) -> Int32
@_silgen_name("capset") private func c_capset(_ header: UnsafeMutableRawPointer, _ data: UnsafeMutableRawPointer) -> Int32

extension NetworkNamespace {
    /// `nsenter --net=PATH`, for tests that drive iptables inside a namespace held by a process.
    var nsenterPrefix: [String] { ["nsenter", "--net=\(path)"] }
}
