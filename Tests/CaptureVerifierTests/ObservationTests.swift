@testable import CaptureVerifier
import IstioCapture
import NetfilterModel
import RuleReaders
import Testing

/// `observe`'s pairing and judging on socket tables as the kernel prints them (recorded from a namespace with
/// Istio's rules and a stand-in Envoy), without a kernel.
@Suite struct ObservationTests {
    static let pod = IPAddress("10.0.0.1")!

    /// A table line: addresses as the kernel prints them (each 32-bit word in host order).
    static func line(_ local: String, _ remote: String, state: String, uid: UInt32, inode: UInt64) -> String {
        func hex(_ endpoint: String) -> String {
            let colon = endpoint.lastIndex(of: ":")!
            let address = IPAddress(String(endpoint[..<colon]).trimmingCharacters(in: ["[", "]"]))!
            let port = String(format: "%04X", Int(endpoint[endpoint.index(after: colon)...])!)
            if address.family == .ipv4 {
                return String(format: "%08X", UInt32(address.value).byteSwapped) + ":" + port
            }
            let words = (0..<4).map { i in UInt32(truncatingIfNeeded: address.value >> UInt128(96 - 32 * i)) }
            return words.map { String(format: "%08X", $0.byteSwapped) }.joined() + ":" + port
        }
        return "   0: \(hex(local)) \(hex(remote)) \(state) 00000000:00000000 00:00000000 00000000  \(uid)        0 \(inode) 1 0000000000000000 20 0 0 10 -1"
    }

    static let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"

    /// Envoy (1337) on 15001/15006, an app server on 8080 and a client (1000) with four connections.
    static let tcp = ([header] + [
        line("0.0.0.0:15001", "0.0.0.0:0", state: "0A", uid: 1337, inode: 11),
        line("0.0.0.0:15006", "0.0.0.0:0", state: "0A", uid: 1337, inode: 12),
        line("0.0.0.0:8080", "0.0.0.0:0", state: "0A", uid: 1000, inode: 13),
        // captured outbound: the app's socket keeps the destination, Envoy's accepted one has it as peer
        line("10.0.0.1:40001", "10.0.0.2:80", state: "01", uid: 1000, inode: 21),
        line("127.0.0.1:15001", "10.0.0.1:40001", state: "01", uid: 1337, inode: 22),
        // bypassing: no Envoy socket behind it
        line("10.0.0.1:40002", "10.0.0.2:81", state: "01", uid: 1000, inode: 23),
        // excluded port: bypasses as configured
        line("10.0.0.1:40003", "10.0.0.2:5432", state: "01", uid: 1000, inode: 24),
        // inbound through Envoy: its forward from 127.0.0.6
        line("10.0.0.1:8080", "127.0.0.6:50001", state: "01", uid: 1000, inode: 25),
        line("127.0.0.6:50001", "10.0.0.1:8080", state: "01", uid: 1337, inode: 26),
        // inbound straight from a client on the network
        line("10.0.0.1:8080", "10.0.0.2:50002", state: "01", uid: 1000, inode: 27),
        // app-local
        line("127.0.0.1:40004", "127.0.0.1:8080", state: "01", uid: 1000, inode: 28),
        line("127.0.0.1:8080", "127.0.0.1:40004", state: "01", uid: 1000, inode: 29),
        // Envoy's own upstream connection
        line("10.0.0.1:40005", "10.0.0.2:80", state: "01", uid: 1337, inode: 30),
        // TIME_WAIT: no owner left to judge
        line("10.0.0.1:40006", "10.0.0.2:80", state: "06", uid: 0, inode: 0),
    ]).joined(separator: "\n") + "\n"

    static var configuration: CaptureConfiguration {
        var c = CaptureConfiguration.injectorDefault
        c.outboundPortsExclude = [5432]
        return c
    }

    @Test func parsesTheKernelsHexAddresses() throws {
        let sockets = try SocketTables.parse(Self.tcp, transport: .tcp)
        #expect(sockets.count == 14)
        #expect(sockets[3] == ObservedSocket(transport: .tcp, local: SocketEndpoint(Self.pod, 40001), remote: SocketEndpoint(IPAddress("10.0.0.2")!, 80),
                                             state: .established, uid: 1000, inode: 21))
        let v6 = Self.header + "\n" + Self.line("[fd00::1]:40001", "[fd00::2]:80", state: "01", uid: 1000, inode: 5) + "\n"
            + Self.line("[::ffff:10.0.0.1]:8080", "[::ffff:10.0.0.2]:5", state: "01", uid: 1000, inode: 6) + "\n"
        let six = try SocketTables.parse(v6, transport: .tcp)
        #expect(six.map(\.local.description) == ["[fd00::1]:40001", "10.0.0.1:8080"])
        #expect(six.map(\.remote.description) == ["[fd00::2]:80", "10.0.0.2:5"])
        #expect(throws: RuleReaderError.self) { try SocketTables.parse(Self.header + "\n   0: nonsense 1 2 3 4 5 6 7 8 9\n", transport: .tcp) }
    }

    @Test func classifiesEachConnectionByItsSocketsAndTheExpectedRules() throws {
        let sockets = try SocketTables.parse(Self.tcp, transport: .tcp)
        let report = observe(samples: [sockets], localAddresses: [Self.pod, IPAddress("127.0.0.1")!], configuration: Self.configuration)
        let got = report.connections.map { "\($0.direction.rawValue) \($0.text) \($0.evidence.rawValue) \($0.classification.rawValue)" }
        #expect(got == [
            "inbound TCP 10.0.0.1:8080 → 10.0.0.2:50002 (UID 1000) direct bypassing-unexpected",
            "inbound TCP 10.0.0.1:8080 → 127.0.0.6:50001 (UID 1000) through-proxy captured",
            "inbound TCP 127.0.0.1:8080 → 127.0.0.1:40004 (UID 1000) local loopback",
            "outbound TCP 10.0.0.1:40001 → 10.0.0.2:80 (UID 1000) through-proxy captured",
            "outbound TCP 10.0.0.1:40002 → 10.0.0.2:81 (UID 1000) direct bypassing-unexpected",
            "outbound TCP 10.0.0.1:40003 → 10.0.0.2:5432 (UID 1000) direct bypassing-expected",
            "outbound TCP 10.0.0.1:40005 → 10.0.0.2:80 (UID 1337) proxy envoy",
            "outbound TCP 127.0.0.1:40004 → 127.0.0.1:8080 (UID 1000) local loopback",
        ])
        // The two bypasses are missing-redirect findings with the connection's first packet as witness, whose
        // path is the expected rules' walk to the listener.
        let findings = report.verification.findings
        #expect(findings.map(\.kind) == [.missingRedirect, .missingRedirect])
        #expect(Set(findings.map(\.obligation)) == [ObservationObligations.inbound, ObservationObligations.outbound])
        let outbound = try #require(findings.first { $0.obligation == ObservationObligations.outbound })
        #expect(outbound.witness?.text == "TCP from 10.0.0.1:40002 (UID 1000) to 10.0.0.2:81 out eth0")
        #expect(outbound.witness?.verdict == .redirect(ports: 15001...15001))
        let expected = ExpectedRules.tables(for: Self.configuration)
        let replay = ConcreteEvaluator(family: .ipv4, tables: expected).trace(outbound.witness!.packet, pipeline: outbound.witness!.pipeline)
        #expect(replay.path == outbound.path)
        let inbound = try #require(findings.first { $0.obligation == ObservationObligations.inbound })
        #expect(inbound.witness?.text == "TCP from 10.0.0.2:50002 to 10.0.0.1:8080 in eth0")
        #expect(!report.verification.ok)
        #expect(report.verification.result(ObservationObligations.dns)?.status == .notApplicable)
    }

    @Test func aConnectionSeenInSeveralSamplesCountsOnce() throws {
        let sockets = try SocketTables.parse(Self.tcp, transport: .tcp)
        let once = observe(samples: [sockets], localAddresses: [Self.pod], configuration: Self.configuration)
        let twice = observe(samples: [sockets, Array(sockets.prefix(5))], localAddresses: [Self.pod], configuration: Self.configuration)
        #expect(twice.connections == once.connections)
        #expect(twice.samples == 2)
    }

    @Test func dnsOverTCPIsPairedWithTheDNSProxyAndUDPIsShownNotJudged() throws {
        var config = CaptureConfiguration.injectorDefault
        config.redirectDNS = true
        config.captureAllDNS = true
        let tcp = ([Self.header] + [
            Self.line("127.0.0.1:15053", "0.0.0.0:0", state: "0A", uid: 1337, inode: 40),
            // captured: the DNS proxy's accepted socket has the app's source as peer
            Self.line("10.0.0.1:40010", "10.96.0.10:53", state: "01", uid: 1000, inode: 41),
            Self.line("127.0.0.1:15053", "10.0.0.1:40010", state: "01", uid: 1337, inode: 42),
            // straight to the nameserver
            Self.line("10.0.0.1:40012", "10.96.0.10:53", state: "01", uid: 1000, inode: 43),
        ]).joined(separator: "\n") + "\n"
        let udp = ([Self.header] + [
            Self.line("10.0.0.1:40011", "10.96.0.10:53", state: "01", uid: 1000, inode: 44),
            Self.line("127.0.0.1:15053", "0.0.0.0:0", state: "07", uid: 1337, inode: 45),
        ]).joined(separator: "\n") + "\n"
        let sockets = try SocketTables.parse(tcp, transport: .tcp) + SocketTables.parse(udp, transport: .udp)
        let report = observe(samples: [sockets], localAddresses: [Self.pod], configuration: config)
        #expect(report.connections.map { "\($0.text) \($0.classification.rawValue) \($0.expected?.disposition.summary ?? "-")" } == [
            "TCP 10.0.0.1:40010 → 10.96.0.10:53 (UID 1000) captured DNS proxy 15053",
            "UDP 10.0.0.1:40011 → 10.96.0.10:53 (UID 1000) unobserved DNS proxy 15053",
            "TCP 10.0.0.1:40012 → 10.96.0.10:53 (UID 1000) bypassing-unexpected DNS proxy 15053",
        ])
        #expect(report.verification.findings.map(\.kind) == [.dnsCapture])
        #expect(report.verification.findings.first?.obligation == ObservationObligations.dns)
        #expect(report.verification.result(ObservationObligations.dns)?.status == .failed)
    }

    @Test func liveRulesThatDisagreeWithTheEvidenceAreAFinding() throws {
        // The app's connection went through Envoy, but the rules read now leave port 80 alone.
        let sockets = try SocketTables.parse(Self.tcp, transport: .tcp).filter { [21, 22, 11].contains($0.inode) }
        var changed = Self.configuration
        changed.outboundPortsExclude = [80]
        let live = Ruleset(tables: ExpectedRules.tables(for: changed))
        let report = observe(samples: [sockets], localAddresses: [Self.pod], configuration: Self.configuration, liveRules: live)
        let contradictions = report.verification.findings(ofKind: .observationContradictsRules)
        #expect(contradictions.count == 1)
        #expect(contradictions.first?.witness?.text == "TCP from 10.0.0.1:40001 (UID 1000) to 10.0.0.2:80 out eth0")
        #expect(report.connections.first?.live?.toProxy == false)
        #expect(report.connections.first?.classification == .captured)
        // The rule proof is in the same report: the live rules are not the configuration's.
        #expect(report.verification.obligations.contains { $0.id == "outbound-completeness" })
    }
}

@Suite struct DownwardAPITests {
    @Test func readsGoQuotedValues() {
        let text = #"""
        sidecar.istio.io/status="{\"initContainers\":[\"istio-init\"],\"containers\":[\"istio-proxy\"]}"
        traffic.sidecar.istio.io/excludeOutboundPorts="5432,6379"
        multi="line one\nline \u00e9\x41\101"
        not a pair
        """#
        #expect(ProxyContainerView.parseDownwardAPI(text) == [
            "sidecar.istio.io/status": #"{"initContainers":["istio-init"],"containers":["istio-proxy"]}"#,
            "traffic.sidecar.istio.io/excludeOutboundPorts": "5432,6379",
            "multi": "line one\nline éAA",
        ])
    }

    @Test func theProxyContainersViewGivesTheCNIDerivation() throws {
        let manifest = ProxyContainerView.manifest(
            annotations: ["traffic.sidecar.istio.io/excludeOutboundPorts": "5432"], labels: [:],
            environment: ["ISTIO_META_INTERCEPTION_MODE": "REDIRECT", "ISTIO_META_ISTIO_VERSION": "1.24.2", "INSTANCE_IP": "fd00::1",
                          "ISTIO_META_DNS_CAPTURE": "true"],
            proxyUID: 1337, proxyGID: 1337)
        let c = try manifest.captureConfiguration()
        #expect(c.istioVersion == IstioVersion(1, 24, 2))
        #expect(!c.versionAssumed)
        #expect(c.outboundPortsExclude == [5432])
        #expect(c.redirectDNS)
        #expect(c.ipv6Enabled)
        #expect(c.interceptionMode == .redirect)
    }
}
