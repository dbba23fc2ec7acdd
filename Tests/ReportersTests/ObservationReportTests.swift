import CaptureVerifier
import Foundation
import IstioCapture
import NetfilterModel
import Reporters
import RuleReaders
import Testing
import TestSupport

/// `observe`'s renderings: the text report in full, the JSON against the documented schema (verify's, with
/// `connections`), with the rules unreadable and readable.
@Suite struct ObservationReportTests {
    /// As the kernel printed it: Envoy (1337) listening on 15001, an app connection (1000) to 10.0.0.2:80 it holds,
    /// one to 10.0.0.2:81 it does not, and one to the excluded port 5432.
    static let tcp = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000:3A99 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1337        0 11 1 0000000000000000 100 0 0 10 0
           1: 0100000A:9C41 0200000A:0050 01 00000000:00000000 00:00000000 00000000  1000        0 21 2 0000000000000000 20 0 0 10 -1
           2: 0100007F:3A99 0100000A:9C41 01 00000000:00000000 00:00000000 00000000  1337        0 22 1 0000000000000000 20 0 0 10 -1
           3: 0100000A:9C42 0200000A:0051 01 00000000:00000000 00:00000000 00000000  1000        0 23 2 0000000000000000 20 0 0 10 -1
           4: 0100000A:9C43 0200000A:1538 01 00000000:00000000 00:00000000 00000000  1000        0 24 2 0000000000000000 20 0 0 10 -1

        """

    static var configuration: CaptureConfiguration {
        var c = CaptureConfiguration.injectorDefault
        c.outboundPortsExclude = [5432]
        c.istioVersion = IstioVersion(1, 26, 0)
        return c
    }

    static func report(live: Ruleset? = nil) throws -> ObservationReport {
        let sockets = try SocketTables.parse(tcp, transport: .tcp)
        return observe(samples: [sockets], localAddresses: [IPAddress("10.0.0.1")!, IPAddress("127.0.0.1")!],
                       configuration: configuration, liveRules: live)
    }

    @Test func textShowsEachConnectionAndExplainsTheBypass() throws {
        let text = ObservationText.render(try Self.report(), ruleset: nil, source: "sockets of this network namespace")
        #expect(text == """
            iptaudit observe — sockets of this network namespace
              Istio 1.26.0, rules by istio-init, inbound REDIRECT, IPv4 only
              inbound capture: all ports except 15090,15021,15020 and tunnel port 15008 -> 15006
              outbound capture: all destinations -> 15001, never ports 5432
              proxy identity: uid 1337, gid 1337
              application sockets' GID taken as their UID (the socket tables do not show it)
              rules: not readable here; connections judged by the rules for this configuration

            Connections
              captured              out TCP 10.0.0.1:40001 → 10.0.0.2:80 (UID 1000)
                                        through the proxy: its socket 127.0.0.1:15001 has this connection's source as peer
                                        expected: Envoy outbound listener 15001
              bypassing-unexpected  out TCP 10.0.0.1:40002 → 10.0.0.2:81 (UID 1000)
                                        direct: no proxy socket holds the other end
                                        expected: Envoy outbound listener 15001
              bypassing-expected    out TCP 10.0.0.1:40003 → 10.0.0.2:5432 (UID 1000)
                                        direct: no proxy socket holds the other end
                                        expected: 10.0.0.2:5432 directly — not through Envoy

            Findings

            [1] error missing-redirect (ipv4)
                Observed TCP 10.0.0.1:40002 → 10.0.0.2:81 (UID 1000): no proxy socket holds its other end: it went straight to 10.0.0.2:81, but the rules for this configuration send it to Envoy outbound listener 15001.
                witness: TCP from 10.0.0.1:40002 (UID 1000) to 10.0.0.2:81 out eth0
                outcome: REDIRECT --to-ports 15001
                path:    nat OUTPUT → nat OUTPUT#1 -j ISTIO_OUTPUT → nat ISTIO_OUTPUT#11 -j ISTIO_REDIRECT → nat ISTIO_REDIRECT#1 REDIRECT --to-ports 15001
                fix:     The pod's rules do not capture what its configuration says: run `iptaudit verify` where the rules are readable; reinstall Istio's rules (restart the pod so istio-init or istio-cni programs them again) and find what changed them.

            Capture contradicted: 1 error, 0 warnings; 3 connections judged.

            """)
    }

    @Test func junitHasOneTestcasePerObservationObligation() throws {
        let xml = VerificationJUnit.render(try Self.report().verification, source: "sockets", command: "observe")
        let file = try VerificationReportTests.temp(xml, "xml")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r = try VerificationReportTests.python("""
            import sys
            from junitparser import JUnitXml
            for suite in JUnitXml.fromfile(sys.argv[1]):
                print(suite.name)
                for case in suite:
                    print(case.name, "|", ",".join(type(x).__name__ for x in case.result))
            """, [file])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == """
            iptaudit observe: sockets
            observed-outbound: observed outbound connections go where the rules for this configuration send them | Failure
            observed-inbound: observed inbound connections arrive the way the rules for this configuration deliver them | Skipped
            observed-dns: observed DNS connections go where the rules for this configuration send them | Skipped

            """)
    }

    @Test func jsonMatchesTheDocumentedSchemaWithAndWithoutTheRules() throws {
        var changed = Self.configuration
        changed.outboundPortsExclude = [80]
        let live = Ruleset(tables: ExpectedRules.tables(for: changed), backends: [.ipv4: .legacy])
        for (report, ruleset) in [(try Self.report(), nil), (try Self.report(live: live), live)] {
            let json = VerificationJSON.render(report, ruleset: ruleset, source: "sockets")
            let file = try VerificationReportTests.temp(json, "json")
            defer { try? FileManager.default.removeItem(atPath: file) }
            let schema = VerificationReportTests.repo.appendingPathComponent("docs/verify-report.schema.json").path
            let r = try VerificationReportTests.python(
                "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))); print('valid')", [file, schema])
            #expect(r.status == 0 && r.stdout.contains("valid"), "\(r.stderr)")
            let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            let connections = try #require(doc["connections"] as? [[String: Any]])
            #expect(connections.compactMap { $0["classification"] as? String } == ["captured", "bypassing-unexpected", "bypassing-expected"])
            #expect(doc["samples"] as? Int == 1)
            let kinds = (doc["findings"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
            #expect(kinds.contains("observation-contradicts-rules") == (ruleset != nil), "\(kinds)")
        }
    }
}
