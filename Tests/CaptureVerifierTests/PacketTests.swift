@testable import CaptureVerifier
import NetfilterModel
import Testing

@Suite("Packets")
struct PacketTests {
    @Test("human rendering", arguments: [
        (Packet(family: .ipv4, source: IPAddress("10.0.0.1")!, destination: IPAddress("10.0.0.1")!, destinationPort: 9080,
                outInterface: "eth0", uid: 1000, gid: 1000), "TCP from UID 1000 to 10.0.0.1:9080 out eth0"),
        (Packet(family: .ipv4, source: IPAddress("127.0.0.6")!, destination: IPAddress("10.0.0.1")!, destinationPort: 8080,
                outInterface: "lo", uid: 1337, gid: 1337), "TCP from 127.0.0.6 (UID 1337) to 10.0.0.1:8080 out lo"),
        (Packet(family: .ipv4, protocolNumber: 17, source: IPAddress("10.0.0.1")!, destination: IPAddress("8.8.8.8")!, destinationPort: 53,
                outInterface: "eth0", uid: 0, gid: 1337), "UDP from UID 0 GID 1337 to 8.8.8.8:53 out eth0"),
        (Packet(family: .ipv6, source: IPAddress("fd00::2")!, destination: IPAddress("fd00::1")!, destinationPort: 15008,
                inInterface: "eth0", mark: 0x539, state: .established), "TCP from fd00::2 to [fd00::1]:15008 in eth0 mark 0x539 (ESTABLISHED)"),
        (Packet(family: .ipv4, protocolNumber: 17, source: IPAddress("127.0.0.53")!, destination: IPAddress("10.0.0.1")!, sourcePort: 53,
                destinationPort: 40001, inInterface: "lo"), "UDP from 127.0.0.53:53 to 10.0.0.1:40001 in lo"),
        (Packet(family: .ipv4, protocolNumber: 1, source: IPAddress("10.0.0.1")!, destination: IPAddress("1.2.3.4")!, destinationPort: 0,
                outInterface: "eth0", uid: 1000, gid: 1000), "ICMP from UID 1000 to 1.2.3.4 out eth0"),
    ])
    func rendering(_ p: Packet, _ text: String) {
        #expect(p.description == text)
    }

    @Test("representatives prefer realistic values the class allows")
    func representatives() {
        let rules = Table(family: .ipv4, name: .nat, chains: [Chain(name: .output, policy: .accept, rules: [
            Rule(destination: AddressMatch("9.9.0.0/16"), outInterface: InterfaceMatch("lo"), protocol: ProtocolMatch(6),
                 matches: [.owner(OwnerMatch(uid: IDRangeMatch(1337)))], target: .return),
            Rule(destination: AddressMatch("127.0.0.1/32"), target: .return),
        ])])
        let space = PacketSpace(family: .ipv4, tables: [rules])
        var local = space.universe
        local[.inInterface] = space.noInterface(.inInterface)
        local[.outInterface] = space.noInterface(.outInterface).complement
        // Out eth0 to a peer, not to the pod's own address (which the kernel routes over lo).
        #expect(space.representative(of: local).description == "TCP from UID 1000 to 10.0.0.2:9080 out eth0")
        // A loopback destination goes out lo when the class allows it; the pod's address over lo too.
        var loopback = local
        loopback[.destination] = space.atoms(.destination, inside: [AddressMatch("127.0.0.1/32")!])
        #expect(space.representative(of: loopback).description == "TCP from UID 1000 to 127.0.0.1:9080 out lo")
        var overLo = local
        overLo[.outInterface] = space.atoms(.outInterface, interfaceNamed: "lo")
        #expect(space.representative(of: overLo).description == "TCP from UID 1000 to 10.0.0.1:9080 out lo")
        var constrained = local
        constrained[.destination] = space.atoms(.destination, inside: [AddressMatch("9.9.0.0/16")!])
        constrained[.uid] = space.atoms(ids: [1337], field: .uid)
        constrained[.outInterface] = space.atoms(.outInterface, interfaceNamed: "lo")
        #expect(space.representative(of: constrained).description == "TCP from UID 1337 to 9.9.0.1:9080 out lo")
        var inbound = space.universe
        inbound[.outInterface] = space.noInterface(.outInterface)
        inbound[.inInterface] = space.noInterface(.inInterface).complement
        #expect(space.representative(of: inbound).description == "TCP from 10.0.0.2 to 10.0.0.1:9080 in eth0")
    }
}
