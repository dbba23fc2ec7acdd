import Foundation

/// Real connections in a test namespace, to check where the kernel delivers them: listeners where Istio's proxies
/// listen (TCP 15001, 15006, 15008; UDP 15053) read each accepted connection's original destination
/// (SO_ORIGINAL_DST), and one client per connection is forked under its uid/gid (the socket made under them, as
/// the owner match requires), with its SO_MARK, from the pod's namespace or (inbound) from a client namespace
/// entered with setns.
public enum ConnectionProbe {
    public struct Connection: CustomStringConvertible, Sendable {
        public var name: String
        public var uid: UInt32
        public var gid: UInt32
        public var mark: UInt32
        /// Sent from the client namespace, arriving at the pod from the network.
        public var inbound: Bool
        public var proto: String
        public var host: String
        public var port: UInt16
        public init(name: String, uid: UInt32 = 0, gid: UInt32 = 0, mark: UInt32 = 0, inbound: Bool = false,
                    proto: String, host: String, port: UInt16) {
            self.name = name
            self.uid = uid
            self.gid = gid
            self.mark = mark
            self.inbound = inbound
            self.proto = proto
            self.host = host
            self.port = port
        }
        public var description: String {
            "\(name): \(inbound ? "in" : "out") \(proto) \(host):\(port) as uid \(uid) gid \(gid)" + (mark == 0 ? "" : " mark 0x\(String(mark, radix: 16))")
        }
        var spec: String { "\(name),\(uid),\(gid),\(mark),\(inbound ? "in" : "out"),\(proto),\(host),\(port)" }
    }

    public struct Landing: Sendable {
        /// The listener's port, nil when no listener got it.
        public var landed: Int?
        /// `host:port` the connection was made to, as SO_ORIGINAL_DST gives it (TCP only).
        public var original: String?
    }

    /// Runs every connection in turn from `pod` (inbound ones from `client`); one landing per connection name.
    public static func run(_ connections: [Connection], in pod: TestNamespace, client: TestNamespace? = nil) throws -> [String: Landing] {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-probe-\(getpid())-\(UUID().uuidString).py")
        try source.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let r = try pod.run(["timeout", "-s", "KILL", "45", "python3", script.path, client?.path ?? "-"] + connections.map(\.spec))
        guard r.status == 0 else { throw TestNamespaceError.commandFailed("probe", r.status, r.stderr) }
        var out: [String: Landing] = [:]
        for line in r.stdout.split(separator: "\n") {
            guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let name = o["name"] as? String else { continue }
            out[name] = Landing(landed: o["landed"] as? Int, original: o["original"] as? String)
        }
        return out
    }

    static let source = #"""
    import ctypes, json, os, select, signal, socket, struct, sys, time
    signal.alarm(40)  # never outlive the test
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
        name, uid, gid, mark, side, proto, host, port = spec.split(",")
        uid, gid, mark, port = int(uid), int(gid), int(mark), int(port)
        pid = os.fork()
        if pid == 0:
            try:
                if side == "in":
                    fd = os.open(client_ns, os.O_RDONLY)
                    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                        os._exit(3)
                kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
                # The owner match sees the credentials the socket was created with, so drop them first; SO_MARK
                # needs CAP_NET_ADMIN, so a marked socket is made (and marked) before.
                if mark:
                    c = socket.socket(socket.AF_INET, kind)
                    c.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
                os.setgroups([]); os.setresgid(gid, gid, gid); os.setresuid(uid, uid, uid)
                if not mark:
                    c = socket.socket(socket.AF_INET, kind)
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
}
