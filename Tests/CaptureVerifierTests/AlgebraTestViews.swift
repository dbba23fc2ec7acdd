@testable import CaptureVerifier
import NetfilterModel

/// Test-only views of the packet algebra: a concrete packet as a box, membership, sampling, and one rule
/// compiled alone. The product never needs them.
extension PacketSpace {
    /// The atom of a concrete value of each field, for turning a packet into a box.
    func box(for packet: Packet) -> PacketBox? {
        var b = universe
        func setNumeric(_ f: PacketField, _ v: UInt128) -> Bool {
            guard let a = domain(f).atom(containing: v) else { return false }
            b[f] = AtomSet(capacity: atomCount(f), atoms: [a])
            return true
        }
        func setName(_ f: PacketField, _ n: String?) -> Bool {
            let atoms = self.atoms(f, interfaces: { $0 == (n ?? "") })
            guard atoms.count == 1 else { return false }
            b[f] = atoms
            return true
        }
        func setMark(_ f: PacketField, _ v: UInt32) -> Bool {
            guard let a = atom(f, markValue: v) else { return false }
            b[f] = AtomSet(capacity: atomCount(f), atoms: [a])
            return true
        }
        guard packet.family == family,
              setNumeric(.l4Protocol, UInt128(packet.protocolNumber)),
              setNumeric(.source, packet.source.value), setNumeric(.destination, packet.destination.value),
              setNumeric(.sourcePort, UInt128(packet.sourcePort)), setNumeric(.destinationPort, UInt128(packet.destinationPort)),
              packet.uid.map({ setNumeric(.uid, UInt128($0)) }) ?? true,
              packet.gid.map({ setNumeric(.gid, UInt128($0)) }) ?? true,
              setMark(.mark, packet.mark), setMark(.connmark, packet.connmark),
              setName(.inInterface, packet.inInterface), setName(.outInterface, packet.outInterface)
        else { return nil }
        b[.ctState] = atoms(states: [packet.state])
        return b
    }

    /// Whether a concrete packet (its values as it entered) belongs to a packet set.
    func contains(_ set: PacketSet, _ packet: Packet) -> Bool {
        guard let point = box(for: packet) else { return false }
        return set.boxes.contains { b in
            PacketField.allCases.allSatisfy { f in
                let own = b.input(f)
                return !(point[f] & own).isEmpty && (point[f] & own) == point[f]
            }
        }
    }

    /// A packet built from one atom per field (its representative), for sampling the space.
    func packet(atoms: [PacketField: Int]) -> Packet {
        var b = universe
        for (f, a) in atoms { b[f] = AtomSet(capacity: atomCount(f), atoms: [a]) }
        return representative(of: b)
    }

    /// A rule compiled for the symbolic walk (tests check the cubes against the concrete conditions).
    func compile(_ rule: Rule) -> CompiledRule {
        SymbolicDomain(space: self).compile(rule, conditions: rule.conditions(family: family))
    }
}
