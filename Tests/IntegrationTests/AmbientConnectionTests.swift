import Foundation
import Testing
import TestSupport

/// Ambient's capture on a real kernel, by real connections: istio-cni's default in-pod rules loaded into a pod
/// namespace with listeners where ztunnel has them (15001, 15006, 15008, and UDP 15053), a client namespace
/// across a veth for inbound traffic. Each connection lands where `iptaudit trace` said, and an outbound one
/// lands with its original destination (SO_ORIGINAL_DST).
@Suite("Ambient: connections land where trace says")
struct AmbientConnectionTests {
    struct Connection: CustomStringConvertible {
        var name: String
        var inbound: Bool
        var mark: UInt32
        var proto: String
        var host: String
        var port: UInt16
        var expected: Int?
        var description: String { "\(name): \(inbound ? "in" : "out") \(proto) \(host):\(port) mark 0x\(String(mark, radix: 16))" }
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), .timeLimit(.minutes(2)))
    func connectionsLandWhereTheTraceSaid() throws {
        let pod = try TestNamespace()
        let client = try TestNamespace()
        try pod.mustRun(["iptables-legacy-restore"], stdin: try Fixtures.text("istio/master/live-save/ambient-iptables/default.ipv4.save"))
        for cmd in [["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "veth1"],
                    ["ip", "link", "set", "veth1", "netns", client.name],
                    ["ip", "addr", "add", "10.0.0.1/24", "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"],
                    ["ip", "route", "add", "default", "via", "10.0.0.2", "dev", "eth0"],
                    ["ip", "rule", "add", "fwmark", "0x111/0xfff", "lookup", "100", "pref", "32764"],
                    ["ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"]] {
            try pod.mustRun(cmd)
        }
        for cmd in [["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", "10.0.0.2/24", "dev", "veth1"], ["ip", "link", "set", "veth1", "up"]] {
            try client.mustRun(cmd)
        }
        let connections = [
            Connection(name: "app", inbound: false, mark: 0, proto: "tcp", host: "1.2.3.4", port: 80, expected: 15001),
            Connection(name: "ztunnel", inbound: false, mark: 0x539, proto: "tcp", host: "1.2.3.4", port: 80, expected: nil),
            Connection(name: "ztunnel-high-bits", inbound: false, mark: 0x10539, proto: "tcp", host: "1.2.3.4", port: 80, expected: nil),
            Connection(name: "dns", inbound: false, mark: 0, proto: "udp", host: "10.96.0.10", port: 53, expected: 15053),
            Connection(name: "app-udp", inbound: false, mark: 0, proto: "udp", host: "1.2.3.4", port: 9999, expected: nil),
            Connection(name: "inbound-app", inbound: true, mark: 0, proto: "tcp", host: "10.0.0.1", port: 9080, expected: 15006),
            Connection(name: "inbound-hbone", inbound: true, mark: 0, proto: "tcp", host: "10.0.0.1", port: 15008, expected: 15008),
        ]
        let real = try ConnectionProbe.run(connections.map {
            ConnectionProbe.Connection(name: $0.name, mark: $0.mark, inbound: $0.inbound, proto: $0.proto, host: $0.host, port: $0.port)
        }, in: pod, client: client)
        for c in connections {
            let got = try #require(real[c.name], "\(c): no report from the probe")
            #expect(got.landed == c.expected, "\(c): landed on \(got.landed.map(String.init) ?? "nothing")")
            // 15008 is ztunnel's own listener, reached without NAT; a redirected connection keeps its destination.
            if c.proto == "tcp", let landed = got.landed, landed != Int(c.port) {
                #expect(got.original == "\(c.host):\(c.port)", "\(c): original destination \(got.original ?? "-")")
            }
            // The trace of the same packet names the same place.
            var argv = ["trace", c.inbound ? "in" : "out", c.proto, "\(c.host):\(c.port)", "--netns", pod.path, "--format", "json",
                        "--mark", "0x\(String(c.mark, radix: 16))"]
            if c.inbound { argv += ["--from", "10.0.0.2", "--iif", "eth0"] }
            let t = try Binary.run(argv)
            try #require(t.status == 0, "trace \(c): \(t.stderr)")
            let doc = try #require(try JSONSerialization.jsonObject(with: Data(t.stdout.utf8)) as? [String: Any])
            let verdict = try #require(doc["verdict"] as? [String: Any])
            let tracedPort = verdict["action"] as? String == "REDIRECT" ? verdict["port"] as? Int : nil
            let kernelRedirect = got.landed.flatMap { $0 == Int(c.port) ? nil : $0 }
            #expect(tracedPort == kernelRedirect, "\(c): trace says \(verdict), the kernel delivered to \(got.landed.map(String.init) ?? "nothing")")
        }
    }
}
