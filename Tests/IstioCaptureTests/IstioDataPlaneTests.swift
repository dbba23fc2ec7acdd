import Foundation
import CorpusSupport
import IstioCapture
import NetfilterModel
import Testing

/// What `verify` decides from the rules alone: which data plane installed them and whether IPv6 is captured.
@Suite struct IstioDataPlaneTests {
    static let sidecar = """
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
        -A OUTPUT -j ISTIO_OUTPUT
        -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
        -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
        -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -j ISTIO_REDIRECT
        -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        COMMIT

        """

    /// Ambient's in-pod rules (istio-cni's node agent): ISTIO_PRERT and ISTIO_OUTPUT, no sidecar chains.
    static let ambient = """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        :ISTIO_OUTPUT - [0:0]
        :ISTIO_PRERT - [0:0]
        -A PREROUTING -j ISTIO_PRERT
        -A OUTPUT -j ISTIO_OUTPUT
        -A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
        -A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp -m tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006
        COMMIT

        """

    static let kubeProxyOnly = """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        :KUBE-SERVICES - [0:0]
        -A OUTPUT -j KUBE-SERVICES
        COMMIT

        """

    @Test func sidecarRules() throws {
        let plane = IstioDataPlane(detectedIn: try Corpus.ruleset(ipv4: Self.sidecar))
        #expect(plane.mode == .sidecar)
        #expect(plane.families == [.ipv4])
        #expect(!plane.capturesIPv6)
    }

    @Test func ambientRules() throws {
        let plane = IstioDataPlane(detectedIn: try Corpus.ruleset(ipv4: Self.ambient))
        #expect(plane.mode == .ambient)
        #expect(plane.families == [.ipv4])
    }

    /// ISTIO_PRERT beside a sidecar's ISTIO_INBOUND or ISTIO_REDIRECT (in any table) is checked as a sidecar.
    @Test func prerouteChainBesideSidecarChainsIsASidecar() throws {
        let mixed = Self.sidecar.replacingOccurrences(of: ":ISTIO_OUTPUT - [0:0]", with: ":ISTIO_OUTPUT - [0:0]\n:ISTIO_PRERT - [0:0]")
        #expect(IstioDataPlane(detectedIn: try Corpus.ruleset(ipv4: mixed)).mode == .sidecar)
    }

    @Test func noIstioChains() throws {
        let plane = IstioDataPlane(detectedIn: try Corpus.ruleset(ipv4: Self.kubeProxyOnly))
        #expect(plane.mode == .none)
        #expect(plane.families.isEmpty)
        #expect(IstioDataPlane(detectedIn: Ruleset()).mode == .none)
    }

    /// Istio chains in ip6tables mean istio-iptables saw IPv6 on the pod; ip6tables without them do not.
    @Test func ipv6() throws {
        let both = IstioDataPlane(detectedIn: try Corpus.ruleset(ipv4: Self.sidecar, ipv6: Self.sidecar))
        #expect(both.mode == .sidecar)
        #expect(both.families == [.ipv4, .ipv6])
        #expect(both.capturesIPv6)
        let onlyIPv6 = IstioDataPlane(detectedIn: try Corpus.ruleset(ipv4: "", ipv6: Self.sidecar))
        #expect(onlyIPv6.capturesIPv6)
        #expect(onlyIPv6.families == [.ipv6])
        let plainIPv6 = IstioDataPlane(detectedIn: try Corpus.ruleset(ipv4: Self.sidecar, ipv6: Self.kubeProxyOnly))
        #expect(!plainIPv6.capturesIPv6)
        // iptables' tables are per family: IPv6 configured but without ip6tables rules meets no Istio rule.
        #expect(plainIPv6.familiesMet(configured: [.ipv4, .ipv6]) == [.ipv4])
        #expect(both.familiesMet(configured: [.ipv4]) == [.ipv4, .ipv6])
    }

    @Test func nativeInetTablesMeetIPv6WhenItIsConfigured() {
        // The inet table as the reader gives it for IPv6: Istio wrote no IPv6 rule into it (an IPv4-only install).
        var inet = Table(family: .ipv6, name: "inet istio-proxy-nat", chains: [Chain(name: "output", policy: .accept, rules: [])])
        inet.nativeFamily = .inet
        var ipv4 = inet
        ipv4.family = .ipv4
        ipv4.chains[0].rules = [Rule(target: .redirect(PortRewriteTarget(ports: 15001...15001)))]
        let plane = IstioDataPlane(detectedIn: Ruleset(tables: [ipv4, inet]))
        #expect(plane.families == [.ipv4], "no IPv6 rule: Istio did not configure IPv6")
        #expect(plane.familiesMet(configured: [.ipv4]) == [.ipv4])
        #expect(plane.familiesMet(configured: [.ipv4, .ipv6]) == [.ipv4, .ipv6], "IPv6 packets pass through the inet table")
        var ip = inet
        ip.nativeFamily = .ip6
        #expect(IstioDataPlane(detectedIn: Ruleset(tables: [ipv4, ip])).familiesMet(configured: [.ipv4, .ipv6]) == [.ipv4])
    }

    @Test func istioChainNames() {
        #expect(IstioNames.isIstioChain(.istioOutput))
        #expect(IstioNames.isIstioChain(.istioPrerouting))
        #expect(IstioNames.isIstioChain("ISTIO_OLD"))
        #expect(!IstioNames.isIstioChain("KUBE-SERVICES"))
        #expect(!IstioNames.isIstioChain(.output))
    }
}
