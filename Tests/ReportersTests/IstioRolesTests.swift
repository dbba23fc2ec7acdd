import Foundation
import NetfilterModel
import Reporters
import TestSupport
import Testing

@Suite struct IstioRolesTests {
    /// The dumps the annotator must cover completely: current and two older sidecar shapes, and istio-cni.
    static let covered = GraphCorpus.cases.filter { ["master", "1.26.8", "1.14.6"].contains($0.ref) }

    static func annotations(_ table: Table) -> [(RulePosition, Rule, String?)] {
        table.chains.flatMap { chain in
            chain.rules.enumerated().map { i, rule in
                let pos = RulePosition(chain: chain.name, number: i + 1)
                return (pos, rule, IstioRoles.annotate(table: table, position: pos, rule: rule))
            }
        }
    }

    /// Every rule of every Istio chain (and every rule Istio put in a hook chain) gets a role.
    @Test(arguments: covered)
    func everyIstioRuleIsAnnotated(_ c: GraphCorpusCase) throws {
        let ruleset = try c.ruleset()
        var missing: [String] = []
        for table in ruleset.tables {
            for (pos, rule, note) in Self.annotations(table) where note == nil {
                // In these dumps every rule was installed by Istio, hook chains included.
                missing.append("\(table.family) \(table.name) \(pos): \(SaveSyntax.render(rule, in: pos.chain, family: table.family))")
            }
        }
        #expect(missing.isEmpty, "rules without a role:\n\(missing.joined(separator: "\n"))")
    }

    /// The same rule reads the same in both families.
    @Test func familiesReadAlike() throws {
        let c = try #require(GraphCorpus.named("master/sidecar-iptables/ipv6-dns-uid-gid"))
        let ruleset = try c.ruleset()
        // Addresses differ between families (127.0.0.6 and ::6); the roles do not.
        func role(_ note: String?) -> String {
            (note ?? "-").split(separator: " ").map { $0.contains(":") && !$0.hasSuffix(":") || $0.contains(".") && $0.first?.isNumber == true ? "ADDR" : String($0) }
                .joined(separator: " ")
        }
        for name in [TableName.nat] {
            let v4 = try #require(ruleset.table(name, family: .ipv4)), v6 = try #require(ruleset.table(name, family: .ipv6))
            let a = Self.annotations(v4).map { "\($0.0) \(role($0.2))" }
            let b = Self.annotations(v6).map { "\($0.0) \(role($0.2))" }
            #expect(a.count == b.count)
            #expect(zip(a, b).filter { $0 != $1 }.isEmpty, "\(zip(a, b).filter { $0 != $1 })")
        }
    }

    static func note(_ save: String, _ chain: ChainName, _ number: Int, table name: TableName = .nat, family: Family = .ipv4) throws -> String? {
        let tables = try GraphCorpus.tables(save, family)
        let table = try #require(tables.first { $0.name == name })
        let rule = try #require(table.chain(chain)?.rules[number - 1])
        return IstioRoles.annotate(table: table, position: RulePosition(chain: chain, number: number), rule: rule)
    }

    static func corpusNote(_ caseName: String, _ table: TableName, _ family: Family, where match: (Rule) -> Bool) throws -> [String?] {
        let c = try #require(GraphCorpus.named(caseName))
        let t = try #require(try c.ruleset().table(table, family: family))
        return Self.annotations(t).filter { match($0.1) }.map(\.2)
    }

    @Test func specificRoles() throws {
        let tproxy = "master/sidecar-iptables/tproxy"
        let natOutput = try #require(GraphCorpus.named(tproxy)).ruleset().table(.nat, family: .ipv4)
        let rules = try #require(natOutput?.chain("ISTIO_OUTPUT")?.rules)
        let notes = rules.indices.map { IstioRoles.annotate(table: natOutput!, position: .init(chain: "ISTIO_OUTPUT", number: $0 + 1), rule: rules[$0]) }
        #expect(notes.contains("exempts proxy UID 1337"))
        #expect(notes.contains("exempts proxy GID 1337"))
        #expect(notes.contains("proxy self-call → inbound listener"))
        #expect(notes.contains("app traffic over lo untouched"))
        #expect(notes.contains("Envoy's forward from 127.0.0.6 untouched"))
        #expect(notes.contains("loopback destination untouched"))
        #expect(notes.contains("excluded CIDR 1.1.0.0/16"))
        #expect(notes.contains("outbound capture → 15001 for 9.9.0.0/16"))

        #expect(try Self.corpusNote(tproxy, .mangle, .ipv4) { if case .tproxy = $0.target { true } else { false } } == ["TPROXY → 15006 with mark 0x539"])
        #expect(try Self.corpusNote(tproxy, .nat, .ipv4) { if case .redirect(let r) = $0.target { r.ports == 15001...15001 } else { false } } == ["outbound capture → 15001"])
        #expect(try Self.corpusNote(tproxy, .nat, .ipv4) { if case .redirect(let r) = $0.target { r.ports == 15006...15006 } else { false } } == ["inbound capture → 15006"])
        #expect(try Self.corpusNote(tproxy, .nat, .ipv4) { if case .redirect(let r) = $0.target { r.ports == 15053...15053 } else { false } } == ["DNS → 15053", "DNS → 15053"])
        #expect(try Self.corpusNote(tproxy, .raw, .ipv4) { if case .ct(let ct) = $0.target { ct.zone == 1 && $0.matches.contains { $0.name == "owner" } } else { false } }
                == ["conntrack zone 1 for the DNS agent's queries", "conntrack zone 1 for the DNS agent's queries"])
        #expect(try Self.corpusNote(tproxy, .nat, .ipv4) { $0.target == .jump("ISTIO_OUTPUT") } == ["jump to Istio's outbound chain"])

        let cni = "master/cni-sidecar-iptables/basic"
        #expect(try Self.corpusNote(cni, .nat, .ipv4) { $0.target == .return && $0.protocol?.number == 6 && $0.matches.count == 1 }.contains("excluded outbound port 15020"))
        #expect(try Self.corpusNote(cni, .nat, .ipv4) { $0.target == .return && $0.protocol?.number == 6 && $0.matches.count == 1 }.contains("excluded inbound port 15021"))
        #expect(try Self.corpusNote("master/sidecar-iptables/ipv6-outbound-ports", .nat, .ipv6) { $0.target == .jump("ISTIO_REDIRECT") }
                == ["outbound capture → 15001 for port 32000", "outbound capture → 15001 for port 31000"])
        #expect(try Self.corpusNote("master/sidecar-iptables/basic-exclude-nic", .nat, .ipv4) { $0.inInterface != nil } == ["excluded interface not-istio-nic"])
        let inbound = try Self.corpusNote("master/cni-sidecar-iptables/basic", .nat, .ipv4) { $0.target == .return }
        #expect(inbound.contains("tunnel port 15008 not captured"))
        let drop = try Self.corpusNote("master/sidecar-iptables/drop-invalid", .mangle, .ipv4) { _ in true }
        #expect(drop.contains("drop conntrack INVALID"))
    }

    /// Exclusions from the injector's defaults, written by hand in the 1.26 shape.
    @Test func inboundExclusionsAndHookLevelDNS() throws {
        let save = """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        :ISTIO_INBOUND - [0:0]
        :ISTIO_IN_REDIRECT - [0:0]
        :ISTIO_OUTPUT - [0:0]
        :ISTIO_REDIRECT - [0:0]
        -A PREROUTING -p tcp -j ISTIO_INBOUND
        -A OUTPUT -p udp -m udp --dport 53 -m owner --uid-owner 1337 -j RETURN
        -A OUTPUT -d 10.96.0.10/32 -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053
        -A ISTIO_INBOUND -p tcp -m tcp --dport 15021 -j RETURN
        -A ISTIO_INBOUND -p tcp -m tcp --dport 8080 -j ISTIO_IN_REDIRECT
        -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
        -A ISTIO_OUTPUT -d 10.0.0.0/8 -j RETURN
        -A ISTIO_OUTPUT -p tcp -m tcp --dport 3306 -j RETURN
        -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        COMMIT

        """
        #expect(try Self.note(save, .prerouting, 1) == "jump to Istio's inbound chain")
        #expect(try Self.note(save, .output, 1) == "exempts proxy UID 1337 (DNS)")
        #expect(try Self.note(save, .output, 2) == "DNS → 15053")
        #expect(try Self.note(save, "ISTIO_INBOUND", 1) == "excluded inbound port 15021")
        #expect(try Self.note(save, "ISTIO_INBOUND", 2) == "inbound capture → 15006 for port 8080")
        #expect(try Self.note(save, "ISTIO_OUTPUT", 1) == "excluded CIDR 10.0.0.0/8")
        #expect(try Self.note(save, "ISTIO_OUTPUT", 2) == "excluded outbound port 3306")
    }

    /// kube-proxy's rules play no part in Istio's scheme: no annotation, even where they RETURN, MARK or DROP.
    @Test func kubeProxyRulesGetNoAnnotation() throws {
        let nat = try GraphCorpus.kubeProxyNat(services: 30)
        let annotated = Self.annotations(nat).filter { $0.2 != nil }
        #expect(annotated.isEmpty, "\(annotated.map { "\($0.0) \($0.2!)" })")
        let filter = try GraphCorpus.tables("""
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :KUBE-FORWARD - [0:0]
        -A FORWARD -j KUBE-FORWARD
        -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
        -A KUBE-FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT
        -A KUBE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        COMMIT

        """, .ipv4)
        for table in filter {
            #expect(Self.annotations(table).allSatisfy { $0.2 == nil }, "\(Self.annotations(table).compactMap(\.2))")
        }
    }

    /// The listing prints the role at the end of the row.
    @Test func listingCarriesTheRoles() throws {
        let c = try #require(GraphCorpus.named("master/sidecar-iptables/tproxy"))
        let text = RulesetListing.render(try c.ruleset(), annotate: { IstioRoles.annotate(table: $0, position: $1, rule: $2) })
        let line = try #require(text.split(separator: "\n").first { $0.contains("redir ports 15001") })
        #expect(line.hasSuffix("# outbound capture → 15001"))
    }
}

/// Ambient's in-pod rules read as ztunnel's, not Envoy's: every rule of istio-cni's dumps gets a role, and the
/// roles name the mark, ports and probe address each rule deals with.
@Suite struct AmbientRolesTests {
    static let cases = GraphCorpus.casesWithAmbient.filter { $0.testDescription.contains("ambient-iptables") && !$0.testDescription.contains("hostprobe") }

    @Test(arguments: cases)
    func everyAmbientRuleIsAnnotated(_ c: GraphCorpusCase) throws {
        for table in try c.ruleset().tables {
            for (pos, rule, note) in IstioRolesTests.annotations(table) {
                let text = SaveSyntax.render(rule, in: pos.chain, family: table.family)
                #expect(note != nil, "\(table.name) \(pos): \(text)")
                #expect(!(note ?? "").contains("Envoy") && !(note ?? "").contains("TPROXY"), "\(text): \(note ?? "")")
            }
        }
    }

    @Test func rolesNameWhatEachRuleDoes() throws {
        let c = try #require(GraphCorpus.casesWithAmbient.first { $0.testDescription.hasSuffix("ambient-iptables/virtual_interfaces") })
        let ruleset = try c.ruleset()
        func notes(_ table: TableName) throws -> [String] {
            try IstioRolesTests.annotations(#require(ruleset.table(table, family: .ipv4))).compactMap(\.2)
        }
        let nat = try notes(.nat)
        #expect(nat.contains("virtual interface fake1s0f0 → ztunnel's outbound listener 15001"))
        #expect(nat.contains("kubelet probes (host-probe SNAT 169.254.7.127) bypass ztunnel"))
        #expect(nat.contains("inbound → ztunnel's inbound plaintext listener 15006 (HBONE 15008 and ztunnel's mark exempt)"))
        #expect(nat.contains("outbound → ztunnel's outbound listener 15001 (ztunnel's mark exempt)"))
        let mangle = try notes(.mangle)
        #expect(mangle.contains("connections ztunnel opens into the pod get connmark 0x111"))
        #expect(mangle.contains("replies on ztunnel's connections get mark 0x111 (ip rule → table 100 → back to ztunnel)"))
    }
}
