import Foundation
import Testing
import TestSupport

/// libnftables (and libnftnl, libxtables, libjansson and libgmp behind it) is loaded only when nf_tables holds
/// native tables: a legacy-only read never maps it, a native read loads it and still reads the tables.
/// Observed through the dynamic loader's own account of every object it maps (`LD_DEBUG=files`).
@Suite(.serialized) struct LibraryLoadTests {
    /// The objects the loader mapped for one run of iptaudit, by file name.
    static func loadedObjects(_ args: [String]) throws -> (result: CommandResult, objects: [String]) {
        let r = try runCommand(["timeout", "-s", "KILL", "60", Binary.path] + args, environment: ["LD_DEBUG": "files"])
        let objects = r.stderr.split(separator: "\n").compactMap { line -> String? in
            guard let start = line.range(of: "file=") else { return nil }
            return String(line[start.upperBound...].prefix { $0 != " " && $0 != ";" })
        }
        return (r, objects)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func aLegacyOnlyReadNeverLoadsLibnftables() throws {
        let ns = try TestNamespace()
        try loadGolden(CLITests.basic, family: 4, backend: "legacy", into: ns)
        for args in [["show", "--format", "save"], ["verify", "--format", "json"]] {
            let (r, objects) = try Self.loadedObjects(args + ["--netns", ns.path])
            #expect([0, 1].contains(r.status), "\(args): \(r.stderr)")
            #expect(objects.contains { $0.contains("libip4tc") }, "the loader's account lists what it mapped: \(objects)")
            #expect(!objects.contains { $0.contains("libnftables") || $0.contains("libnftnl") }, "\(args) loaded \(objects)")
        }
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func aNativeNftablesReadLoadsLibnftablesAndReadsTheTables() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["nft", "-f", Fixtures.istio.appendingPathComponent("master/sidecar-nftables/dns-uid-gid.golden").path])
        let (r, objects) = try Self.loadedObjects(["show", "--netns", ns.path, "--format", "nft"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(objects.contains { $0.hasPrefix("libnftables.so") }, "\(objects)")
        #expect(r.stdout == (try ns.mustRun(["nft", "list", "ruleset"])))
    }
}
