@testable import CaptureVerifier
import NetfilterModel
import Testing

/// A small deterministic generator, so property tests are reproducible.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One random atom per field (every packet class the cuts distinguish is reachable this way), always with a
/// socket owner so owner matches are decided.
func samplePacket(_ space: PacketSpace, _ rng: inout SplitMix) -> Packet {
    var atoms: [PacketField: Int] = [:]
    for f in PacketField.allCases { atoms[f] = Int.random(in: 0..<space.atomCount(f), using: &rng) }
    var p = space.packet(atoms: atoms)
    if p.uid == nil, let u = atoms[.uid], let g = atoms[.gid] {
        p.uid = space.interval(.uid, u).map { UInt32($0.lowerBound) }
        p.gid = space.interval(.gid, g).map { UInt32($0.lowerBound) }
    }
    return p
}

/// Rules that exercise every condition the compiler models (and one it does not).
let algebraRules: [Rule] = [
    Rule(destination: AddressMatch("10.0.0.0/8"), protocol: ProtocolMatch(6), matches: [.tcp(TCPMatch(destinationPort: PortMatch(80...90)))], target: .accept),
    Rule(source: AddressMatch("127.0.0.6/32"), outInterface: InterfaceMatch("lo"), target: .return),
    Rule(destination: AddressMatch("192.168.0.0/16", inverted: true), outInterface: InterfaceMatch("veth+"), target: .drop),
    Rule(protocol: ProtocolMatch(17, inverted: true), matches: [.owner(OwnerMatch(uid: IDRangeMatch(1000...1999)))], target: .accept),
    Rule(protocol: ProtocolMatch(6), matches: [.multiport(MultiportMatch(direction: .either, ports: [53...53, 15008...15008]))], target: .accept),
    Rule(protocol: ProtocolMatch(6), matches: [.multiport(MultiportMatch(direction: .destination, ports: [53...53, 8000...8080], inverted: true)),
                                              .owner(OwnerMatch(gid: IDRangeMatch(1337, inverted: true)))], target: .accept),
    Rule(matches: [.mark(MarkMatch(value: 0x539)), .connmark(MarkMatch(value: 0x1, mask: 0xF, inverted: true))], target: .accept),
    Rule(protocol: ProtocolMatch(6), matches: [.conntrack(ConntrackMatch(states: .init([.related, .established])))], target: .accept),
    Rule(inInterface: InterfaceMatch("eth0", inverted: true), matches: [.state(StateMatch(states: .invalid, inverted: true))], target: .drop),
    Rule(matches: [.udp(UDPMatch(sourcePort: PortMatch(53), destinationPort: PortMatch(1024...65535)))], target: .return),
]

@Suite("Packet sets")
struct PacketAlgebraTests {
    let space = PacketSpace(family: .ipv4, tables: [Table(family: .ipv4, name: .filter, chains: [Chain(name: .output, policy: .accept, rules: algebraRules)])])

    func sample(_ rng: inout SplitMix) -> Packet { samplePacket(space, &rng) }

    func randomBox(_ rng: inout SplitMix) -> PacketBox {
        var b = space.universe
        for f in PacketField.allCases where Bool.random(using: &rng) {
            let n = space.atomCount(f)
            let picked = (0..<n).filter { _ in Bool.random(using: &rng) }
            b[f] = AtomSet(capacity: n, atoms: picked.isEmpty ? [0] : picked)
        }
        return b
    }

    @Test("splitting by a rule is exact: matched and remainder are disjoint and cover the input", arguments: algebraRules.indices)
    func splitIsExact(_ index: Int) {
        var rng = SplitMix(state: UInt64(index) + 1)
        let compiled = space.compile(algebraRules[index])
        for _ in 0..<20 {
            let input = PacketSet([randomBox(&rng)]).union(PacketSet([randomBox(&rng)]))
            let (matched, remainder) = input.split(by: compiled.cubes.map(\.box))
            for _ in 0..<100 {
                let p = sample(&rng)
                let inInput = space.contains(input, p)
                let inMatched = space.contains(matched, p)
                let inRemainder = space.contains(remainder, p)
                #expect(!(inMatched && inRemainder), "\(p) is on both sides of rule \(index)")
                #expect(inInput == (inMatched || inRemainder), "\(p): input \(inInput), matched \(inMatched), remainder \(inRemainder)")
                if inInput {
                    // The matched side is exactly what the rule's known conditions accept.
                    #expect(inMatched == algebraRules[index].conditions(family: .ipv4).allSatisfy { $0.holds(for: p) }, "rule \(index) on \(p)")
                }
            }
        }
    }

    @Test("splitting gives the boxes of intersecting and subtracting every box it touches", arguments: algebraRules.indices)
    func splitAgreesWithBoxAlgebra(_ index: Int) {
        var rng = SplitMix(state: UInt64(index) + 77)
        let cubes = space.compile(algebraRules[index]).cubes
        for _ in 0..<20 {
            // Some boxes inside a cube, some across it, some beside it: the split takes shortcuts for the first
            // and the last.
            var boxes = [randomBox(&rng), randomBox(&rng)]
            if let c = cubes.first { boxes.append(c.intersection(randomBox(&rng))) }
            let input = PacketSet(boxes)
            var matched: [PacketBox] = [], rest = input.boxes
            for cube in cubes {
                var next: [PacketBox] = []
                for box in rest {
                    if cube.touches(box) {
                        matched.append(cube.intersection(box))
                        next += box.subtracting(cube)
                    } else {
                        next.append(box)
                    }
                }
                rest = next
            }
            let split = input.splitUncompacted(by: cubes)
            #expect(split.matched.boxes == matched, "rule \(index)")
            #expect(split.remainder.boxes == rest, "rule \(index)")
        }
    }

    @Test("only matches iptaudit cannot evaluate are reported unknown")
    func unknownConditions() {
        #expect(space.compile(algebraRules[0]).unknown.isEmpty)
        let set = Rule(matches: [.set(SetMatch(name: "allow", directions: [.destination]))], target: .accept)
        #expect(space.compile(set).unknown == ["set"])
        let flags = Rule(protocol: ProtocolMatch(6), matches: [.tcp(TCPMatch(flags: TCPFlagsMatch(mask: 0x17, compare: 0x02)))], target: .accept)
        #expect(space.compile(flags).unknown == ["tcp --tcp-flags"])
        let dnat = Rule(matches: [.conntrack(ConntrackMatch(states: .init(.dnat)))], target: .accept)
        #expect(!space.compile(dnat).unknown.isEmpty)
    }

    @Test("union, intersection and subtraction agree with membership")
    func setOperations() {
        var rng = SplitMix(state: 99)
        for _ in 0..<30 {
            let a = PacketSet([randomBox(&rng)]), b = PacketSet([randomBox(&rng)]).union(PacketSet([randomBox(&rng)]))
            let union = a.union(b), meet = a.intersection(b), minus = a.subtracting(b)
            for _ in 0..<60 {
                let p = sample(&rng)
                let inA = space.contains(a, p), inB = space.contains(b, p)
                #expect(space.contains(union, p) == (inA || inB))
                #expect(space.contains(meet, p) == (inA && inB))
                #expect(space.contains(minus, p) == (inA && !inB))
            }
            // The union stays a disjoint union: no sampled packet lies in two of its boxes.
            for _ in 0..<60 {
                let p = sample(&rng)
                #expect(union.boxes.filter { space.contains(PacketSet([$0]), p) }.count <= 1)
            }
        }
    }

    @Test("atom sets")
    func atomSets() {
        let a = AtomSet(capacity: 70, atoms: [0, 3, 64, 69])
        #expect(a.count == 4)
        #expect(a.atoms == [0, 3, 64, 69])
        #expect(a.complement.count == 66)
        #expect((a & a.complement).isEmpty)
        #expect((a | a.complement).isFull)
        #expect(a.subtracting(AtomSet(capacity: 70, atoms: [3])).atoms == [0, 64, 69])
        #expect(AtomSet(capacity: 70, full: true).count == 70)
    }

    /// Capacities on both sides of the one-word form (≤ 64 atoms), the short lists and the bitsets.
    @Test("atom sets agree with a reference set in every representation", arguments: [1, 5, 63, 64, 65, 70, 300, 5000])
    func atomSetsAgainstReference(_ capacity: Int) {
        var rng = SplitMix(state: UInt64(capacity))
        func random() -> (AtomSet, Set<Int>) {
            // Small, large, nearly full and contiguous sets, so lists and bitsets both occur.
            let kind = Int.random(in: 0..<4, using: &rng)
            var members: Set<Int>
            switch kind {
            case 0: members = Set((0..<Int.random(in: 0...5, using: &rng)).map { _ in Int.random(in: 0..<capacity, using: &rng) })
            case 1: members = Set((0..<capacity).filter { _ in Bool.random(using: &rng) })
            case 2: members = Set(0..<capacity).subtracting((0..<3).map { _ in Int.random(in: 0..<capacity, using: &rng) })
            default:
                let lo = Int.random(in: 0..<capacity, using: &rng)
                members = Set(lo..<min(capacity, lo + Int.random(in: 1...capacity, using: &rng)))
            }
            return (AtomSet(capacity: capacity, atoms: members), members)
        }
        for _ in 0..<200 {
            let (a, ra) = random(), (b, rb) = random()
            #expect(Set((a & b).atoms) == ra.intersection(rb))
            #expect(Set((a | b).atoms) == ra.union(rb))
            #expect(Set(a.subtracting(b).atoms) == ra.subtracting(rb))
            #expect(Set(a.complement.atoms) == Set(0..<capacity).subtracting(ra))
            #expect(a.count == ra.count)
            #expect(a.atoms == ra.sorted())
            #expect(a.isEmpty == ra.isEmpty)
            #expect(a.isFull == (ra.count == capacity))
            #expect(a.first == ra.min())
            #expect(a.intersects(b) == !ra.isDisjoint(with: rb))
            #expect(a.isSubset(of: b) == ra.isSubset(of: rb))
            #expect(a.isSubset(of: a | b) && (a & b).isSubset(of: b))
            #expect((a == b) == (ra == rb))
            if ra == rb { #expect(a.hashValue == b.hashValue) }
            let probe = Int.random(in: 0..<capacity, using: &rng)
            #expect(a.contains(probe) == ra.contains(probe))
            // Built in different ways, the same set is the same value.
            #expect(a.complement.complement == a)
            #expect((a | a.complement).isFull && (a & a.complement).isEmpty)
            #expect(AtomSet(capacity: capacity, dense: a.words) == a)
            let lo = Int.random(in: 0..<capacity, using: &rng), hi = Int.random(in: lo..<capacity, using: &rng)
            #expect(Set(AtomSet(capacity: capacity, range: lo...hi).atoms) == Set(lo...hi))
        }
    }

    @Test("interface classes tell every mentioned name and wildcard apart")
    func interfaceClasses() {
        let names = PacketSpace.interfaceClasses(exact: ["lo", "eth0", "veth0"], wildcards: ["veth", "vethx"])
        #expect(names.first == "")
        #expect(names.contains("lo") && names.contains("eth0") && names.contains("veth0"))
        // A name for "veth+ but not vethx+ and not veth0", one for "vethx+", one for nothing mentioned.
        let wildcardOnly = names.filter { $0.hasPrefix("veth") && $0 != "veth0" }
        #expect(wildcardOnly.count == 2)
        #expect(wildcardOnly.contains { $0.hasPrefix("vethx") })
        #expect(names.contains { !$0.isEmpty && !$0.hasPrefix("veth") && !["lo", "eth0"].contains($0) })
    }

    @Test("a packet maps to a box of single atoms and back")
    func packetRoundTrip() throws {
        let p = Packet(family: .ipv4, source: IPAddress("10.0.0.1")!, destination: IPAddress("10.1.2.3")!, destinationPort: 85,
                       outInterface: "eth0", uid: 1500, gid: 1500)
        let box = try #require(space.box(for: p))
        #expect(PacketField.allCases.allSatisfy { f in f == .uid || f == .gid ? box[f].count == 1 : box[f].count == 1 })
        #expect(space.contains(PacketSet([box]), p))
        let q = space.representative(of: box)
        #expect(space.box(for: q) == box)
    }
}
