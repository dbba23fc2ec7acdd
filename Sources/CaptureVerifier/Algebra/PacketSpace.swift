import NetfilterModel

/// How one field's values are cut into atoms.
enum FieldDomain: Sendable {
    /// Numeric intervals: atom i is `starts[i] ..< starts[i+1]` (the last runs to `maximum`).
    case intervals(starts: [UInt128], maximum: UInt128)
    /// Interface names: each atom is one equivalence class, named by a representative ("" = no interface).
    case names([String])
    /// Mark values: each atom is one representative value.
    case values([UInt32])
    /// Conntrack states, one atom each.
    case states

    var count: Int {
        switch self {
        case .intervals(let s, _): s.count
        case .names(let n): n.count
        case .values(let v): v.count
        case .states: ConntrackState.allCases.count
        }
    }

    var maximum: UInt128 {
        if case .intervals(_, let m) = self { return m }
        return 0
    }

    func interval(_ atom: Int) -> ClosedRange<UInt128>? {
        guard case .intervals(let starts, let maximum) = self, atom < starts.count else { return nil }
        return starts[atom]...(atom + 1 < starts.count ? starts[atom + 1] - 1 : maximum)
    }

    /// The atom holding a numeric value.
    func atom(containing value: UInt128) -> Int? {
        guard case .intervals(let starts, let maximum) = self, value <= maximum else { return nil }
        var lo = 0, hi = starts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= value { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }
}

/// Values the obligations quantify over, so the atoms can express them exactly (ports, ids, CIDRs, interfaces).
struct SpaceHints: Sendable {
    var addresses: [AddressMatch] = []
    var ports: [UInt16] = []
    var ids: [UInt32] = []
    var interfaces: [String] = []
    var marks: [UInt32] = []
    var protocols: [UInt16] = []
    init() {}
}

/// The atoms of every field for one family, cut at every boundary the family's rules (and the hints) mention.
struct PacketSpace: Sendable {
    let family: Family
    let domains: [FieldDomain]
    /// Mark values reachable from the tested and set values, kept apart so effects map atom to atom.
    let markValues: [UInt32]
    let connmarkValues: [UInt32]
    /// The interface wildcards (`eth+` as `eth`) and exact names the rules and hints mention, to say what class
    /// an interface atom's representative name stands for.
    let interfaceWildcards: Set<String>
    let interfaceNames: Set<String>
    /// Every packet (built once: each rule's cubes start from it).
    let universe: PacketBox

    init(family: Family, tables: [Table], hints: SpaceHints = SpaceHints()) {
        self.family = family
        // Walked in place: a node's table is 100,000 rules, and copying them into one array retained every field.
        let chains = tables.filter { $0.family == family }.flatMap(\.chains)
        var markEffects: [Target] = []
        let addressMax: UInt128 = family == .ipv4 ? 0xFFFF_FFFF : UInt128.max

        // Cuts are collected as lists and sorted once: a node's table draws a few hundred thousand, most distinct,
        // and inserting each into a set cost more than sorting them.
        var protoCuts: [UInt128] = [0, 6, 7, 17, 18]
        var addressCuts: [UInt128] = [0]
        var portCuts: [UInt128] = [0]
        var idCuts: [UInt128] = [0]
        var exactNames: Set<String> = ["lo", "eth0"]
        var wildcards: Set<String> = []
        var markTests: [MarkMatch] = []
        var connmarkTests: [MarkMatch] = []

        func cut(_ cuts: inout [UInt128], _ lo: UInt128, _ hi: UInt128, max: UInt128) {
            cuts.append(lo)
            if hi < max { cuts.append(hi + 1) }
        }
        func sortedUnique(_ cuts: [UInt128]) -> [UInt128] {
            var cuts = cuts
            cuts.sort()
            var kept = 0
            for v in cuts where kept == 0 || cuts[kept - 1] != v {
                cuts[kept] = v
                kept += 1
            }
            cuts.removeLast(cuts.count - kept)
            return cuts
        }
        func address(_ a: AddressMatch?) {
            guard let a, a.address.family == family, let r = a.interval else { return }
            cut(&addressCuts, r.lowerBound, r.upperBound, max: addressMax)
        }
        func port(_ r: ClosedRange<UInt16>) { cut(&portCuts, UInt128(r.lowerBound), UInt128(r.upperBound), max: 65535) }
        func id(_ r: ClosedRange<UInt32>) { cut(&idCuts, UInt128(r.lowerBound), UInt128(r.upperBound), max: UInt128(UInt32.max)) }

        // The atoms are cut where the rules' conditions draw their boundaries.
        for chain in chains {
            for ri in chain.rules.indices {
                switch chain.rules[ri].target {
                case .mark, .connmark, .tproxy: markEffects.append(chain.rules[ri].target)
                default: break
                }
                for c in chain.rules[ri].conditions(family: family, spelled: false) {
                    switch c.test {
                    case .ranges(let f, let ranges):
                        for r in ranges {
                            switch f {
                            case .l4Protocol: cut(&protoCuts, r.lowerBound, r.upperBound, max: 255)
                            case .source, .destination: cut(&addressCuts, r.lowerBound, r.upperBound, max: addressMax)
                            case .sourcePort, .destinationPort: cut(&portCuts, r.lowerBound, r.upperBound, max: 65535)
                            case .uid, .gid: cut(&idCuts, r.lowerBound, r.upperBound, max: UInt128(UInt32.max))
                            case .inInterface, .outInterface, .mark, .connmark, .ctState: break
                            }
                        }
                    case .eitherPort(let ranges):
                        for r in ranges { cut(&portCuts, r.lowerBound, r.upperBound, max: 65535) }
                    case .interface(_, let i):
                        if i.wildcard { wildcards.insert(i.name) } else { exactNames.insert(i.name) }
                    case .mark(let f, let m):
                        if f == .mark { markTests.append(m) } else { connmarkTests.append(m) }
                    case .states, .notEvaluated:
                        break
                    }
                }
            }
        }
        for a in hints.addresses { address(a) }
        for p in hints.ports { port(p...p) }
        for i in hints.ids { id(i...i) }
        for n in hints.interfaces { exactNames.insert(n) }
        for p in hints.protocols { cut(&protoCuts, UInt128(p), UInt128(p), max: 255) }

        let (marks, connmarks) = PacketSpace.markClosure(effects: markEffects, markTests: markTests,
                                                         connmarkTests: connmarkTests, hints: hints.marks)
        markValues = marks
        connmarkValues = connmarks

        let protoDomain = FieldDomain.intervals(starts: sortedUnique(protoCuts.filter { $0 <= 255 }), maximum: 255)
        let addressDomain = FieldDomain.intervals(starts: sortedUnique(addressCuts), maximum: addressMax)
        let portDomain = FieldDomain.intervals(starts: sortedUnique(portCuts), maximum: 65535)
        let idDomain = FieldDomain.intervals(starts: sortedUnique(idCuts), maximum: UInt128(UInt32.max))
        let nameDomain = FieldDomain.names(PacketSpace.interfaceClasses(exact: exactNames, wildcards: wildcards))
        interfaceWildcards = wildcards
        interfaceNames = exactNames.filter { !$0.isEmpty }
        var domains: [FieldDomain] = []
        for f in PacketField.allCases {
            switch f {
            case .l4Protocol: domains.append(protoDomain)
            case .source, .destination: domains.append(addressDomain)
            case .sourcePort, .destinationPort: domains.append(portDomain)
            case .inInterface, .outInterface: domains.append(nameDomain)
            case .uid, .gid: domains.append(idDomain)
            case .mark: domains.append(.values(marks))
            case .connmark: domains.append(.values(connmarks))
            case .ctState: domains.append(.states)
            }
        }
        self.domains = domains
        universe = PacketBox(fields: PacketField.allCases.map { AtomSet(capacity: domains[$0.rawValue].count, full: true) })
    }

    /// One representative name per class of interface names that no rule can tell apart:
    /// "" (no interface), each exact name, and per wildcard prefix a name that only it (and shorter ones) match,
    /// plus a name matching nothing mentioned.
    static func interfaceClasses(exact: Set<String>, wildcards: Set<String>) -> [String] {
        var names: [String] = [""] + exact.filter { !$0.isEmpty }.sorted()
        let taken = Set(names)
        func longestWildcard(_ name: String) -> String? {
            wildcards.filter { name.hasPrefix($0) }.max { $0.count < $1.count }
        }
        for p in wildcards.sorted() {
            let candidates = (0..<10).map { "\(p)\($0)" } + ["\(p)~x", "\(p)_other"]
            if let rep = candidates.first(where: { !taken.contains($0) && longestWildcard($0) == p }) {
                names.append(rep)
            }
        }
        if !wildcards.contains("") {
            let candidates = ["eth1", "net1", "ens3", "if0", "zz0", "q~0"]
            if let rep = candidates.first(where: { !taken.contains($0) && longestWildcard($0) == nil }) {
                names.append(rep)
            }
        }
        return names
    }

    /// Mark and connmark values: 0, every tested value, a value matching no test, closed under every
    /// MARK / CONNMARK / TPROXY the rules can apply (`effects`: those targets, in the rules' order).
    static func markClosure(effects targets: [Target], markTests: [MarkMatch], connmarkTests: [MarkMatch], hints: [UInt32]) -> ([UInt32], [UInt32]) {
        func noneMatching(_ tests: [MarkMatch]) -> UInt32 {
            let candidates: [UInt32] = [0, 0x7FFF_0000, 0xDEAD_0001, 0x1, 0xFFFF_FFFF]
            return candidates.first { c in !tests.contains { ($0.value & $0.mask) == (c & $0.mask) } } ?? 0
        }
        var marks: Set<UInt32> = [0, noneMatching(markTests)]
        var connmarks: Set<UInt32> = [0, noneMatching(connmarkTests)]
        for t in markTests { marks.insert(t.value) }
        for t in connmarkTests { connmarks.insert(t.value) }
        for h in hints { marks.insert(h); connmarks.insert(h) }
        let limit = 128
        var changed = true
        while changed, marks.count < limit, connmarks.count < limit {
            changed = false
            for t in targets {
                switch t {
                case .mark(let m):
                    for v in marks where marks.insert(m.apply(to: v)).inserted { changed = true }
                case .tproxy(let tp):
                    for v in marks where marks.insert((v & ~tp.markMask) ^ tp.markValue).inserted { changed = true }
                case .connmark(let c):
                    for m in marks {
                        for k in connmarks {
                            let (nm, nk) = ConnmarkEffect.apply(c, mark: m, connmark: k)
                            if marks.insert(nm).inserted { changed = true }
                            if connmarks.insert(nk).inserted { changed = true }
                        }
                    }
                default: break
                }
            }
        }
        return (marks.sorted(), connmarks.sorted())
    }

    func domain(_ f: PacketField) -> FieldDomain { domains[f.rawValue] }
    func atomCount(_ f: PacketField) -> Int { domains[f.rawValue].count }


    func full(_ f: PacketField) -> AtomSet { AtomSet(capacity: atomCount(f), full: true) }
    func empty(_ f: PacketField) -> AtomSet { AtomSet(capacity: atomCount(f)) }

    // MARK: atoms by condition

    /// Atoms of a numeric field inside any of the ranges (ranges must be unions of atoms, which the cuts ensure).
    func atoms(_ f: PacketField, inRanges ranges: [ClosedRange<UInt128>]) -> AtomSet {
        let d = domain(f)
        var set = AtomSet(capacity: d.count)
        var none = true
        for r in ranges {
            // Atoms are sorted intervals: the ones inside a range are those from the atom holding its start
            // up to the atom holding its end (whose start must lie inside the range).
            guard let first = d.atom(containing: r.lowerBound) else { continue }
            let last = d.atom(containing: min(r.upperBound, d.maximum)) ?? first
            var lo = first
            if let iv = d.interval(first), !r.contains(iv.lowerBound) { lo += 1 }
            guard lo <= last else { continue }
            // Most conditions name one range: no union with the empty set to build.
            let piece = AtomSet(capacity: d.count, range: lo...last)
            set = none ? piece : set | piece
            none = false
        }
        return set
    }
    func atoms(_ f: PacketField, values: [UInt128]) -> AtomSet { atoms(f, inRanges: values.map { $0...$0 }) }
    func atoms(ports: [UInt16], field: PacketField = .destinationPort) -> AtomSet {
        atoms(field, values: ports.map { UInt128($0) })
    }
    func atoms(ids: [UInt32], field: PacketField) -> AtomSet { atoms(field, values: ids.map { UInt128($0) }) }
    func atoms(protocols: [UInt16]) -> AtomSet { atoms(.l4Protocol, values: protocols.map { UInt128($0) }) }

    /// Atoms of an address field inside a CIDR (ignoring its inversion flag).
    func atoms(_ f: PacketField, inside cidrs: [AddressMatch]) -> AtomSet {
        atoms(f, inRanges: cidrs.compactMap { $0.address.family == family ? $0.interval : nil })
    }

    func atoms(_ f: PacketField, interfaces match: (String) -> Bool) -> AtomSet {
        guard case .names(let names) = domain(f) else { return empty(f) }
        return AtomSet(capacity: names.count, atoms: names.indices.filter { match(names[$0]) })
    }
    func atoms(_ f: PacketField, interfaceNamed name: String) -> AtomSet { atoms(f, interfaces: { $0 == name }) }
    /// The "no interface" atom (input interface of locally generated packets, output interface before routing).
    func noInterface(_ f: PacketField) -> AtomSet { atoms(f, interfaces: { $0.isEmpty }) }

    func atoms(_ f: PacketField, marks match: (UInt32) -> Bool) -> AtomSet {
        guard case .values(let values) = domain(f) else { return empty(f) }
        return AtomSet(capacity: values.count, atoms: values.indices.filter { match(values[$0]) })
    }
    func atoms(states: [ConntrackState]) -> AtomSet {
        AtomSet(capacity: ConntrackState.allCases.count,
                atoms: states.compactMap { ConntrackState.allCases.firstIndex(of: $0) })
    }

    // MARK: values of atoms

    func interval(_ f: PacketField, _ atom: Int) -> ClosedRange<UInt128>? { domain(f).interval(atom) }
    func name(_ f: PacketField, _ atom: Int) -> String? {
        guard case .names(let n) = domain(f), atom < n.count else { return nil }
        return n[atom]
    }

    /// What an interface atom stands for, in words: `none`, an exact name, `eth+` for the names only that wildcard
    /// matches, or `another name (not …)` for names no rule mentions. Its representative (`eth1`, `net1`) is one
    /// example of the class, not the class.
    func interfaceClass(_ f: PacketField, _ atom: Int) -> String? {
        guard let n = name(f, atom) else { return nil }
        if n.isEmpty { return "none" }
        if interfaceNames.contains(n) { return n }
        if let p = interfaceWildcards.filter({ n.hasPrefix($0) }).max(by: { $0.count < $1.count }) {
            let inside = interfaceNames.filter { $0.hasPrefix(p) }.sorted()
            return "\(p)+" + (inside.isEmpty ? "" : " (other than \(inside.joined(separator: ", ")))")
        }
        let mentioned = interfaceNames.sorted() + interfaceWildcards.sorted().map { $0 + "+" }
        return "another name (not \(mentioned.joined(separator: ", ")))"
    }
    func value(_ f: PacketField, _ atom: Int) -> UInt32? {
        guard case .values(let v) = domain(f), atom < v.count else { return nil }
        return v[atom]
    }
    func state(_ atom: Int) -> ConntrackState? {
        atom < ConntrackState.allCases.count ? ConntrackState.allCases[atom] : nil
    }
    func atom(_ f: PacketField, markValue: UInt32) -> Int? {
        guard case .values(let v) = domain(f) else { return nil }
        return v.firstIndex(of: markValue)
    }
}

extension AddressMatch {
    /// The addresses inside, as a numeric interval; nil for a non-contiguous mask.
    var interval: ClosedRange<UInt128>? {
        guard mask.prefixLength != nil else { return nil }
        let bits = address.family.addressBits
        let all: UInt128 = bits == 32 ? 0xFFFF_FFFF : UInt128.max
        let host = ~mask.value & all
        return address.value...(address.value | host)
    }
}
