import IstioCapture
import NetfilterModel

/// One fully specified packet: what `iptaudit trace` follows and what a finding's witness is.
/// `uid`/`gid` are set only for locally generated packets (the socket owner); interfaces are nil where the
/// hook has none (no input interface on OUTPUT, no output interface on PREROUTING).
public struct Packet: Hashable, Sendable, Codable, CustomStringConvertible {
    public var family: Family
    public var protocolNumber: UInt16
    public var source: IPAddress
    public var destination: IPAddress
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var inInterface: String?
    public var outInterface: String?
    public var uid: UInt32?
    public var gid: UInt32?
    public var mark: UInt32
    public var connmark: UInt32
    public var state: ConntrackState

    public init(family: Family, protocolNumber: UInt16 = ProtocolMatch.tcp, source: IPAddress, destination: IPAddress,
                sourcePort: UInt16 = Packet.ephemeralPort, destinationPort: UInt16, inInterface: String? = nil,
                outInterface: String? = nil, uid: UInt32? = nil, gid: UInt32? = nil, mark: UInt32 = 0,
                connmark: UInt32 = 0, state: ConntrackState = .new) {
        self.family = family
        self.protocolNumber = protocolNumber
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.inInterface = inInterface
        self.outInterface = outInterface
        self.uid = uid
        self.gid = gid
        self.mark = mark
        self.connmark = connmark
        self.state = state
    }

    /// The source port a client socket typically gets; not printed.
    public static let ephemeralPort: UInt16 = 40000

    /// The example pod address of a family, used when nothing constrains an address.
    public static func podAddress(_ family: Family) -> IPAddress {
        family == .ipv4 ? IPAddress(ipv4: 0x0A00_0001) : podIPv6
    }
    /// Parsed once: witnesses are chosen among millions of boxes on large tables.
    private static let podIPv6 = IPAddress("fd00::1") ?? .zero(.ipv6)

    var hasPorts: Bool { [6, 17, 33, 132, 136].contains(protocolNumber) }

    /// `TCP from UID 1000 to 10.0.0.1:9080 out eth0`.
    public var description: String {
        let proto = SaveSyntax.protocolName(protocolNumber).uppercased()
        func endpoint(_ a: IPAddress, _ port: UInt16?) -> String {
            guard let port else { return a.description }
            return family == .ipv6 ? "[\(a)]:\(port)" : "\(a):\(port)"
        }
        var s = proto + " from "
        let showSourcePort = hasPorts && sourcePort != Packet.ephemeralPort
        if let uid {
            var owner = "UID \(uid)"
            if let gid, gid != uid { owner += " GID \(gid)" }
            if source != Packet.podAddress(family) || showSourcePort {
                s += endpoint(source, showSourcePort ? sourcePort : nil) + " (\(owner))"
            } else {
                s += owner
            }
        } else {
            s += endpoint(source, showSourcePort ? sourcePort : nil)
        }
        s += " to " + endpoint(destination, hasPorts ? destinationPort : nil)
        if let i = inInterface { s += " in \(i)" }
        if let o = outInterface { s += " out \(o)" }
        if mark != 0 { s += " mark " + hex(mark) }
        if connmark != 0 { s += " connmark " + hex(connmark) }
        if state != .new { s += " (\(state.rawValue))" }
        return s
    }

    private func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }
}

extension PacketSpace {
    /// Addresses a witness prefers besides the pod's own (before it, for a packet to a peer), parsed once.
    static let otherIPv4 = ["10.0.0.2", "10.96.0.10", "1.2.3.4", "192.168.1.1", "172.16.0.1", "8.8.8.8", "127.0.0.1",
                            "127.0.0.6", "127.0.0.53"].compactMap { IPAddress($0)?.value }
    static let otherIPv6 = ["fd00::2", "2001:db8::1", "fd00:10:96::10", "::1", "::6", "::127.0.0.53"].compactMap { IPAddress($0)?.value }
    /// A destination out an interface other than lo: a peer first, then the pod, then loopback addresses (the
    /// last only when the class allows nothing else). Built once: a witness is chosen among many boxes.
    static let toPeerIPv4 = preferringPeers(otherIPv4, family: .ipv4)
    static let toPeerIPv6 = preferringPeers(otherIPv6, family: .ipv6)
    private static func preferringPeers(_ others: [UInt128], family: Family) -> [UInt128] {
        let loopback = { (v: UInt128) in IPAddress(family: family, value: v).isLoopback }
        return others.filter { !loopback($0) } + [Packet.podAddress(family).value] + others.filter(loopback)
    }

    /// A realistic member of a box: the example pod address, UID 1000 for "an application", ports such as
    /// 9080, `eth0` — whenever the box allows them; otherwise the first value of its first atom.
    /// With `input` (the default) it reads the shadow fields, so it names the packet as it entered.
    func representative(of box: PacketBox, input: Bool = true) -> Packet {
        func field(_ f: PacketField) -> AtomSet { input ? box.input(f) : box[f] }
        func numeric(_ f: PacketField, _ preferred: [UInt128], fallback: (ClosedRange<UInt128>) -> UInt128) -> UInt128 {
            let set = field(f)
            for p in preferred {
                if let a = domain(f).atom(containing: p), set.contains(a) { return p }
            }
            guard let a = set.first, let r = interval(f, a) else { return 0 }
            return fallback(r)
        }
        let proto = UInt16(numeric(.l4Protocol, [6, 17, 1, 58]) { $0.lowerBound == 0 && $0.upperBound > 0 ? $0.upperBound : $0.lowerBound })

        let outNames = field(.outInterface).atoms.compactMap { name(.outInterface, $0) }
        let inNames = field(.inInterface).atoms.compactMap { name(.inInterface, $0) }
        var out = ["eth0", "lo", ""].first(where: outNames.contains) ?? outNames.first ?? ""
        let inbound = out.isEmpty && !outNames.contains("eth0")
        let inn = (inbound ? ["eth0", "lo", ""] : ["", "eth0", "lo"]).first(where: inNames.contains) ?? inNames.first ?? ""

        let pod = Packet.podAddress(family)
        let otherAddresses = family == .ipv4 ? PacketSpace.otherIPv4 : PacketSpace.otherIPv6
        let niceAddress: (ClosedRange<UInt128>) -> UInt128 = { r in
            r.lowerBound < r.upperBound && r.lowerBound % 256 == 0 ? r.lowerBound + 1 : r.lowerBound
        }
        let sourcePreference = inbound ? otherAddresses + [pod.value] : [pod.value] + otherAddresses
        let src = numeric(.source, sourcePreference, fallback: niceAddress)
        // Out an interface other than lo, a packet goes to a peer: not to the pod itself or a loopback address,
        // which the kernel routes over lo. Over lo, and inbound, to the pod.
        let toPeer = !inbound && out != "lo"
        let peerFirst = family == .ipv4 ? PacketSpace.toPeerIPv4 : PacketSpace.toPeerIPv6
        let dst = numeric(.destination, toPeer ? peerFirst : [pod.value] + otherAddresses, fallback: niceAddress)
        if toPeer, IPAddress(family: family, value: dst).isLoopback, outNames.contains("lo") { out = "lo" }
        let nicePort: (ClosedRange<UInt128>) -> UInt128 = { r in
            r.lowerBound == 0 ? min(r.upperBound, max(1024, r.lowerBound)) : r.lowerBound
        }
        let istioPorts = [IstioPort.tunnel, .inbound, .outbound, .dnsProxy].map { UInt128($0.rawValue) }
        let dport = UInt16(numeric(.destinationPort, [9080, 8080, 80, 443, 53] + istioPorts + [22], fallback: nicePort))
        let sport = UInt16(numeric(.sourcePort, [UInt128(Packet.ephemeralPort), 53, UInt128(IstioPort.dnsProxy.rawValue), 12345], fallback: nicePort))
        let local = !inbound
        let proxy = UInt128(IstioNames.proxyID)
        let uid = UInt32(numeric(.uid, [1000, proxy, 0, 1001]) { $0.lowerBound })
        let gid = UInt32(numeric(.gid, [UInt128(uid), 1000, proxy, 0, 1001]) { $0.lowerBound })
        func markValue(_ f: PacketField) -> UInt32 {
            let set = field(f)
            if let zero = atom(f, markValue: 0), set.contains(zero) { return 0 }
            return set.first.flatMap { value(f, $0) } ?? 0
        }
        let states = field(.ctState).atoms.compactMap(state)
        let st = ConntrackState.allCases.first(where: states.contains) ?? .new
        return Packet(family: family, protocolNumber: proto,
                      source: IPAddress(family: family, value: src), destination: IPAddress(family: family, value: dst),
                      sourcePort: sport, destinationPort: dport,
                      inInterface: inn.isEmpty ? nil : inn, outInterface: out.isEmpty ? nil : out,
                      uid: local ? uid : nil, gid: local ? gid : nil,
                      mark: markValue(.mark), connmark: markValue(.connmark), state: st)
    }
}
