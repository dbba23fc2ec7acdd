import Foundation
import Testing
import TestSupport

/// Ambient's capture on a real kernel, by real connections: istio-cni's default in-pod rules loaded into a pod
/// namespace with listeners where ztunnel has them (15001, 15006, 15008, and UDP 15053), a client namespace
/// across a veth for inbound traffic. Each connection lands where `iptaudit trace` said, and an outbound one
/// lands with its original destination (SO_ORIGINAL_DST).
@Suite("Ambient: connections land where trace says")
struct AmbientConnectionTests {
    /// Listeners in the pod; each spec `name,side,mark,proto,host,port` opens one connection, from the pod
    /// (`out`, with SO_MARK when mark > 0) or from the client namespace (`in`, entered with setns).
    static let probeScript = #"""
    import ctypes, json, os, select, socket, struct, sys, time
    SO_ORIGINAL_DST, SO_MARK, CLONE_NEWNET = 80, 36, 0x40000000
    client_ns = sys.argv[1]
    listeners = {}
    for port in (15001, 15006, 15008):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port)); s.listen(16); s.setblocking(False)
        listeners[s] = ("tcp", port)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", 15053)); u.setblocking(False)
    listeners[u] = ("udp", 15053)
    for spec in sys.argv[2:]:
        name, side, mark, proto, host, port = spec.split(",")
        mark, port = int(mark, 0), int(port)
        pid = os.fork()
        if pid == 0:
            try:
                if side == "in":
                    fd = os.open(client_ns, os.O_RDONLY)
                    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                        os._exit(3)
                kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
                c = socket.socket(socket.AF_INET, kind)
                if mark:
                    c.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
                c.settimeout(1.5)
                try:
                    if proto == "tcp":
                        c.connect((host, port)); c.sendall(name.encode()); time.sleep(0.3)
                    else:
                        c.sendto(name.encode(), (host, port))
                except OSError:
                    pass
            finally:
                os._exit(0)
        landed, original = None, None
        deadline = time.time() + 2.0
        while landed is None and time.time() < deadline:
            ready, _, _ = select.select(list(listeners), [], [], max(0.0, deadline - time.time()))
            for s in ready:
                kind, lport = listeners[s]
                if kind == "tcp":
                    conn, _ = s.accept()
                    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
                    oport, oaddr = struct.unpack("!2xH4s8x", raw)
                    original = "%s:%d" % (socket.inet_ntoa(oaddr), oport)
                    conn.close()
                else:
                    s.recvfrom(512)
                landed = lport
        os.waitpid(pid, 0)
        print(json.dumps({"name": name, "landed": landed, "original": original}), flush=True)
    """#

    struct Connection: CustomStringConvertible {
        var name: String
        var inbound: Bool
        var mark: UInt32
        var proto: String
        var host: String
        var port: UInt16
        var expected: Int?
        var description: String { "\(name): \(inbound ? "in" : "out") \(proto) \(host):\(port) mark 0x\(String(mark, radix: 16))" }
        var spec: String { "\(name),\(inbound ? "in" : "out"),\(mark),\(proto),\(host),\(port)" }
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
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-ambient-probe-\(getpid())-\(UUID().uuidString).py")
        try Self.probeScript.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let r = try pod.run(["timeout", "-s", "KILL", "45", "python3", script.path, client.path] + connections.map(\.spec))
        try #require(r.status == 0, "probe failed: \(r.stderr)")
        var real: [String: (landed: Int?, original: String?)] = [:]
        for line in r.stdout.split(separator: "\n") {
            let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            if let name = o["name"] as? String { real[name] = (o["landed"] as? Int, o["original"] as? String) }
        }
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
