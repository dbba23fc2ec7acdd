import CaptureVerifier
import CorpusSupport
import IstioCapture
import NetfilterModel
import TestSupport
import Testing

/// A correct rule set to break: a corpus dump (or what Istio installs for a configuration) and its configuration.
struct MutationBase: Sendable {
    var name: String
    var configuration: CaptureConfiguration
    var ipv4: String
    var ipv6: String?

    static func corpus(_ id: String) throws -> MutationBase {
        let c = try #require(Corpus.named(id), "no corpus case \(id)")
        return MutationBase(name: id, configuration: try c.configuration(), ipv4: c.liveSave(.ipv4) ?? "", ipv6: c.liveSave(.ipv6))
    }

    static func expected(_ name: String, _ config: CaptureConfiguration) -> MutationBase {
        MutationBase(name: name, configuration: config, ipv4: ExampleRules.save(config),
                     ipv6: config.ipv6Enabled ? ExampleRules.save(config, family: .ipv6) : nil)
    }
}

/// One way of breaking (or harmlessly rewriting) a correct rule set.
struct Mutation: CustomTestStringConvertible, Sendable {
    var name: String
    var base: @Sendable () throws -> MutationBase
    var ipv4: @Sendable (String) -> String = { $0 }
    var ipv6: @Sendable (String) -> String = { $0 }
    /// The kinds of every error finding; empty for semantics-preserving rewrites.
    var errors: Set<FindingKind>
    /// Only these families may carry errors (nil: any).
    var errorFamilies: Set<Family>? = nil
    /// A check that some error finding of each expected kind satisfies (the one that shows the break).
    var witness: @Sendable (Finding) -> Bool = { _ in true }
    var testDescription: String { name }
}

func lines(_ text: String) -> [String] { text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }
func edit(_ text: String, _ f: (inout [String]) -> Void) -> String {
    var l = lines(text)
    f(&l)
    return l.joined(separator: "\n")
}
func removing(_ line: String) -> @Sendable (String) -> String {
    { text in edit(text) { l in l.removeAll { $0 == line } } }
}
func replacing(_ old: String, _ new: String) -> @Sendable (String) -> String {
    { $0.replacingOccurrences(of: old, with: new) }
}
func inserting(_ line: String, before anchor: String) -> @Sendable (String) -> String {
    { text in edit(text) { l in if let i = l.firstIndex(of: anchor) { l.insert(line, at: i) } } }
}
func moving(_ line: String, after anchor: String) -> @Sendable (String) -> String {
    { text in edit(text) { l in
        l.removeAll { $0 == line }
        if let i = l.firstIndex(of: anchor) { l.insert(line, at: i + 1) }
    } }
}
func swapping(_ a: String, _ b: String) -> @Sendable (String) -> String {
    { text in edit(text) { l in
        if let i = l.firstIndex(of: a), let j = l.firstIndex(of: b) { l.swapAt(i, j) }
    } }
}

enum Mutations {
    static let basic: @Sendable () throws -> MutationBase = { try .corpus("master/cni-sidecar-iptables/basic") }
    static let dns: @Sendable () throws -> MutationBase = { try .corpus("master/cni-sidecar-iptables/DNS") }
    static let tproxy: @Sendable () throws -> MutationBase = { try .corpus("master/sidecar-iptables/tproxy") }
    static let ipv6: @Sendable () throws -> MutationBase = { try .corpus("master/sidecar-iptables/ipv6-uid-gid") }
    static let excluding: @Sendable () throws -> MutationBase = {
        var c = CaptureConfiguration.injectorDefault
        c.outboundIPRangesExclude = ["10.96.0.0/12"]
        return .expected("injector defaults with -x 10.96.0.0/12", c)
    }

    static let breaking: [Mutation] = [
        Mutation(name: "delete the outbound REDIRECT", base: basic,
                 ipv4: removing("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001"), errors: [.missingRedirect],
                 witness: { $0.witness?.packet.uid == 1000 && $0.witness?.verdict == .policy(.accept) }),
        Mutation(name: "15001 → 15002", base: basic,
                 ipv4: replacing("--to-ports 15001", "--to-ports 15002"), errors: [.wrongPort],
                 witness: { $0.witness?.verdict == .redirect(ports: 15002...15002) }),
        Mutation(name: "drop the UID RETURN", base: basic,
                 ipv4: removing("-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN"), errors: [.ownerMatchGap],
                 witness: { $0.witness?.packet.uid == 1337 && $0.witness?.packet.gid != 1337 && $0.witness?.verdict == .redirect(ports: 15001...15001) }),
        Mutation(name: "drop the GID RETURN", base: basic,
                 ipv4: removing("-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN"), errors: [.ownerMatchGap],
                 witness: { $0.witness?.packet.gid == 1337 && $0.witness?.packet.uid != 1337 }),
        Mutation(name: "1337 → 1338 in the owner rules", base: basic,
                 ipv4: replacing("-owner 1337 ", "-owner 1338 "), errors: [.ownerMatchGap],
                 witness: { $0.witness?.packet.uid == 1337 && $0.witness?.verdict == .redirect(ports: 15001...15001) }),
        Mutation(name: "remove OUTPUT → ISTIO_OUTPUT", base: basic,
                 ipv4: removing("-A OUTPUT -j ISTIO_OUTPUT"), errors: [.missingRedirect],
                 witness: { $0.table == .nat && $0.chain == .output }),
        Mutation(name: "remove the PREROUTING jump", base: basic,
                 ipv4: removing("-A PREROUTING -p tcp -j ISTIO_INBOUND"), errors: [.missingRedirect],
                 witness: { $0.witness?.packet.inInterface == "eth0" && $0.witness?.packet.uid == nil }),
        Mutation(name: "insert an early RETURN in ISTIO_OUTPUT", base: basic,
                 ipv4: inserting("-A ISTIO_OUTPUT -j RETURN", before: "-A ISTIO_OUTPUT -p tcp -m tcp --dport 15020 -j RETURN"),
                 errors: [.missingRedirect], witness: { $0.ruleText == "-A ISTIO_OUTPUT -j RETURN" }),
        Mutation(name: "move the -x exclusion below the catch-all", base: excluding,
                 ipv4: moving("-A ISTIO_OUTPUT -d 10.96.0.0/12 -j RETURN", after: "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"),
                 errors: [.exclusionLeak],
                 witness: { f in f.witness.map { AddressMatch("10.96.0.0/12")!.contains($0.packet.destination) } ?? false }),
        Mutation(name: "break only IPv6 (no PREROUTING jump)", base: ipv6,
                 ipv6: removing("-A PREROUTING -p tcp -j ISTIO_INBOUND"), errors: [.missingRedirect, .familyAsymmetry],
                 errorFamilies: [.ipv6], witness: { $0.family == .ipv6 && $0.witness?.packet.family == .ipv6 }),
        Mutation(name: "load only the IPv4 half of an IPv6 pod", base: ipv6,
                 ipv6: { _ in "" }, errors: [.familyAsymmetry], errorFamilies: [.ipv6],
                 witness: { $0.family == .ipv6 && $0.witness?.verdict == .policy(.accept) }),
        Mutation(name: "swap the conntrack zone rules", base: dns,
                 ipv4: swapping("-A ISTIO_OUTPUT_DNS -p udp -m udp --dport 53 -m owner --uid-owner 1337 -j CT --zone 1",
                                "-A ISTIO_OUTPUT_DNS -p udp -m udp --dport 53 -j CT --zone 2"),
                 errors: [.dnsCapture], witness: { $0.witness?.packet.destinationPort == 53 && $0.witness?.packet.protocolNumber == 17 }),
        Mutation(name: "a foreign rule above ISTIO_OUTPUT in nat OUTPUT", base: basic,
                 ipv4: inserting("-A OUTPUT -d 169.254.169.254/32 -p tcp -j DNAT --to-destination 10.0.0.9:8080", before: "-A OUTPUT -j ISTIO_OUTPUT"),
                 errors: [.foreignRule],
                 witness: { $0.ruleNumber == 1 && $0.chain == .output && $0.witness?.packet.destination == IPAddress("169.254.169.254") }),
        Mutation(name: "remove the 127.0.0.6 RETURN", base: basic,
                 ipv4: removing("-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN"), errors: [.unexpectedCapture],
                 witness: { $0.witness?.packet.source == IPAddress("127.0.0.6") && $0.witness?.packet.outInterface == "lo" }),
        Mutation(name: "TPROXY: delete the TPROXY rule", base: tproxy,
                 ipv4: removing("-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --on-port 15006 --on-ip 0.0.0.0 --tproxy-mark 0x539/0xffffffff"),
                 errors: [.missingRedirect, .familyAsymmetry], errorFamilies: [.ipv4]),
        Mutation(name: "TPROXY: mark mismatch", base: tproxy,
                 ipv4: replacing("--tproxy-mark 0x539/0xffffffff", "--tproxy-mark 0x1/0xffffffff"), errors: [.tproxy, .familyAsymmetry],
                 errorFamilies: [.ipv4], witness: { $0.kind != .tproxy || $0.witness?.verdict == .tproxy(port: 15006, markValue: 1, markMask: 0xFFFF_FFFF) }),
    ]

    static let harmless: [Mutation] = [
        Mutation(name: "reordered adjacent RETURNs", base: basic,
                 ipv4: swapping("-A ISTIO_INBOUND -p tcp -m tcp --dport 15020 -j RETURN", "-A ISTIO_INBOUND -p tcp -m tcp --dport 15090 -j RETURN"),
                 errors: []),
        Mutation(name: "owner RETURNs swapped", base: basic,
                 ipv4: swapping("-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN", "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN"),
                 errors: []),
        Mutation(name: "comments on every Istio rule", base: basic,
                 ipv4: { text in edit(text) { l in
                     for i in l.indices where l[i].hasPrefix("-A ISTIO_") {
                         l[i] = l[i].replacingOccurrences(of: " -j ", with: " -m comment --comment istio -j ")
                     }
                 } }, errors: []),
        Mutation(name: "a LOG rule", base: basic,
                 ipv4: inserting("-A ISTIO_OUTPUT -p tcp -j LOG --log-prefix outbound", before: "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"), errors: []),
        Mutation(name: "-p tcp without -m tcp", base: basic,
                 ipv4: replacing("-p tcp -m tcp --dport", "-p tcp --dport"), errors: []),
        Mutation(name: "IPv6 LOG rule and comments", base: ipv6,
                 ipv6: inserting("-A OUTPUT -j LOG", before: "-A OUTPUT -j ISTIO_OUTPUT"), errors: []),
    ]
}

@Suite("Mutations of correct rule sets")
struct MutationTests {
    func run(_ m: Mutation) throws -> (VerificationReport, Ruleset) {
        let base = try m.base()
        let original = try ruleset(ipv4: base.ipv4, ipv6: base.ipv6)
        let clean = verify(original, configuration: base.configuration)
        #expect(clean.errors.count == 0, "base \(base.name) is not clean:\n\(describe(clean.errors))")
        let ipv4 = m.ipv4(base.ipv4)
        let ipv6 = base.ipv6.map(m.ipv6)
        #expect(ipv4 != base.ipv4 || ipv6 != base.ipv6, "\(m.name) did not change the rules")
        let mutated = try ruleset(ipv4: ipv4, ipv6: ipv6)
        return (verify(mutated, configuration: base.configuration), mutated)
    }

    @Test("a break is reported with its exact kind and a replayable witness", arguments: Mutations.breaking)
    func breaking(_ m: Mutation) throws {
        let (report, rules) = try run(m)
        let errors = report.errors
        #expect(Set(errors.map(\.kind)) == m.errors, "\(m.name):\n\(describe(errors))")
        if let families = m.errorFamilies { #expect(Set(errors.map(\.family)).isSubset(of: families), "\(m.name):\n\(describe(errors))") }
        #expect(!report.ok)
        // The finding that shows the break carries a witness that really takes the reported path.
        for kind in m.errors {
            let ofKind = errors.filter { $0.kind == kind }
            #expect(ofKind.contains(where: m.witness), "\(m.name): no \(kind) finding shows the break:\n\(describe(ofKind))")
            let f = try #require(ofKind.first)
            #expect(f.witness != nil || kind == .backendSplit, "\(kind) without a witness")
            // A family without tables has no rule to walk: its witness's path is empty.
            #expect(!f.path.isEmpty || f.witness == nil || !rules.tables.contains { $0.family == f.family })
        }
        expectWitnessesReplay(report, rules)
    }

    @Test("a semantics-preserving rewrite reports no error", arguments: Mutations.harmless)
    func harmless(_ m: Mutation) throws {
        let (report, rules) = try run(m)
        let errors = report.errors
        #expect(errors.count == 0, "\(m.name):\n\(describe(errors))")
        #expect(report.ok)
        expectWitnessesReplay(report, rules)
    }
}
