import NetfilterModel

/// The packet fields the evaluator tracks.
public enum PacketField: Int, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case l4Protocol, source, destination, sourcePort, destinationPort
    case inInterface, outInterface, uid, gid, mark, connmark, ctState

    /// Index of the shadow that keeps the input value of a field effects can change
    /// (MARK, CONNMARK, a loopback hop), so a box still says which input packets it came from.
    var shadowIndex: Int? {
        switch self {
        case .mark: 0
        case .connmark: 1
        case .inInterface: 2
        case .outInterface: 3
        default: nil
        }
    }
    static let shadowed: [PacketField] = [.mark, .connmark, .inInterface, .outInterface]

    public var description: String {
        switch self {
        case .l4Protocol: "protocol"
        case .source: "source"
        case .destination: "destination"
        case .sourcePort: "source port"
        case .destinationPort: "destination port"
        case .inInterface: "input interface"
        case .outInterface: "output interface"
        case .uid: "owner uid"
        case .gid: "owner gid"
        case .mark: "mark"
        case .connmark: "connmark"
        case .ctState: "conntrack state"
        }
    }
}

/// The conntrack states a single packet can be in (one each); SNAT/DNAT are properties of the
/// connection, not states, and are evaluated as unknown.
public enum ConntrackState: String, CaseIterable, Hashable, Sendable, Codable {
    case new = "NEW", established = "ESTABLISHED", related = "RELATED", invalid = "INVALID", untracked = "UNTRACKED"

    public var bit: ConntrackStates {
        switch self {
        case .new: .new
        case .established: .established
        case .related: .related
        case .invalid: .invalid
        case .untracked: .untracked
        }
    }
}

/// A set of atoms of one field's domain, as a bitset.
public struct AtomSet: Hashable, Sendable {
    var words: [UInt64]
    public let capacity: Int

    public static func == (a: AtomSet, b: AtomSet) -> Bool { a.capacity == b.capacity && a.words == b.words }
    /// One fold of the words: merging boxes hashes many large sets, and equality settles collisions.
    public func hash(into hasher: inout Hasher) { hasher.combine(fold) }
    var fold: UInt64 {
        var fold: UInt64 = UInt64(truncatingIfNeeded: capacity)
        for w in words { fold = (fold &<< 7 | fold &>> 57) ^ w }
        return fold
    }

    public init(capacity: Int, full: Bool = false) {
        self.capacity = capacity
        let n = (capacity + 63) / 64
        words = Array(repeating: full ? ~0 : 0, count: n)
        if full { trim() }
    }

    public init(capacity: Int, atoms: some Sequence<Int>) {
        self.init(capacity: capacity)
        for a in atoms where a >= 0 && a < capacity { words[a / 64] |= 1 << UInt64(a % 64) }
    }

    private mutating func trim() {
        let extra = words.count * 64 - capacity
        if extra > 0, !words.isEmpty { words[words.count - 1] &= ~0 >> UInt64(extra) }
    }

    public var isEmpty: Bool { words.allSatisfy { $0 == 0 } }
    public var isFull: Bool {
        for i in words.indices {
            let expected: UInt64 = i == words.count - 1 && capacity % 64 != 0 ? ~0 >> UInt64(64 - capacity % 64) : ~0
            if words[i] != expected { return false }
        }
        return true
    }
    /// Indices of the words holding any atom (what an intersection test needs to look at).
    var nonzeroWords: [Int] { words.indices.filter { words[$0] != 0 } }
    /// Whether the two sets share an atom, looking only at `words` (the other set's nonzero words).
    func intersects(_ other: AtomSet, at words: [Int]) -> Bool {
        for w in words where self.words[w] & other.words[w] != 0 { return true }
        return false
    }
    public var count: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }
    public func contains(_ atom: Int) -> Bool {
        atom >= 0 && atom < capacity && words[atom / 64] & (1 << UInt64(atom % 64)) != 0
    }
    /// Atom indices in ascending order.
    public var atoms: [Int] {
        var out: [Int] = []
        for (w, word) in words.enumerated() where word != 0 {
            for b in 0..<64 where word & (1 << UInt64(b)) != 0 { out.append(w * 64 + b) }
        }
        return out
    }
    public var first: Int? { atoms.first }

    public static func & (a: AtomSet, b: AtomSet) -> AtomSet {
        var r = a
        for i in r.words.indices { r.words[i] &= b.words[i] }
        return r
    }
    public static func | (a: AtomSet, b: AtomSet) -> AtomSet {
        var r = a
        for i in r.words.indices { r.words[i] |= b.words[i] }
        return r
    }
    public func subtracting(_ b: AtomSet) -> AtomSet {
        var r = self
        for i in r.words.indices { r.words[i] &= ~b.words[i] }
        return r
    }
    public var complement: AtomSet { AtomSet(capacity: capacity, full: true).subtracting(self) }
}

/// A box: per field, a set of atoms. It stands for every packet whose field values fall in those atoms.
///
/// Rules only ever test `fields`. Once an effect changed a field, `shadows` keeps the set that field had on
/// input (nil while unchanged); effects split boxes so the changed field is a function of the shadow,
/// which keeps the box an exact product.
public struct PacketBox: Hashable, Sendable {
    public var fields: [AtomSet]
    public var shadows: [AtomSet?]

    public init(fields: [AtomSet]) {
        self.fields = fields
        shadows = Array(repeating: nil, count: PacketField.shadowed.count)
    }

    public subscript(_ f: PacketField) -> AtomSet {
        get { fields[f.rawValue] }
        set { fields[f.rawValue] = newValue }
    }
    /// The field's value as the packet entered.
    public func input(_ f: PacketField) -> AtomSet {
        f.shadowIndex.flatMap { shadows[$0] } ?? fields[f.rawValue]
    }
    public var isEmpty: Bool { fields.contains { $0.isEmpty } }

    public func intersection(_ cube: PacketBox) -> PacketBox {
        var r = self
        for i in fields.indices { r.fields[i] = fields[i] & cube.fields[i] }
        return r
    }

    /// `self \ cube` as disjoint boxes: for each field the cube constrains, the part that agrees with the cube
    /// on the earlier fields and disagrees on this one.
    public func subtracting(_ cube: PacketBox) -> [PacketBox] { subtracting(Cube(cube)) }

    func subtracting(_ cube: Cube) -> [PacketBox] {
        var pieces: [PacketBox] = []
        var prefix = self
        for i in cube.constrained {
            let outside = prefix.fields[i].subtracting(cube.box.fields[i])
            if !outside.isEmpty {
                var piece = prefix
                piece.fields[i] = outside
                pieces.append(piece)
            }
            prefix.fields[i] = prefix.fields[i] & cube.box.fields[i]
            if prefix.fields[i].isEmpty { break }
        }
        return pieces
    }
}

/// A box used as a condition, with the fields it constrains worked out once (long chains test it against
/// many boxes).
struct Cube: Sendable {
    var box: PacketBox
    /// Fields that are not full, least selective first.
    var constrained: [Int]
    /// For each constrained field, the words of the cube's set that hold atoms.
    var words: [[Int]]

    init(_ box: PacketBox) {
        self.box = box
        // Any order of the constrained fields gives an exact, disjoint difference; putting the most selective
        // field last (a /32 destination, one port) keeps a long chain's remainder in few boxes: its "not this
        // address" piece is narrowed rule after rule instead of a new piece being split off each time.
        let fields = box.fields
        constrained = fields.indices.filter { !fields[$0].isFull }.enumerated().sorted { a, b in
            let fa = Double(fields[a.element].count) / Double(max(1, fields[a.element].capacity))
            let fb = Double(fields[b.element].count) / Double(max(1, fields[b.element].capacity))
            return fa != fb ? fa > fb : a.offset < b.offset
        }.map(\.element)
        words = constrained.map { box.fields[$0].nonzeroWords }
    }

    /// The part of the box inside the cube (only the constrained fields change).
    func intersection(_ b: PacketBox) -> PacketBox {
        var r = b
        for f in constrained { r.fields[f] = b.fields[f] & box.fields[f] }
        return r
    }

    /// Whether the box shares a packet with the cube.
    func touches(_ b: PacketBox) -> Bool {
        for (k, f) in constrained.enumerated() where !b.fields[f].intersects(box.fields[f], at: words[k]) { return false }
        return true
    }
}

/// A packet class: a union of disjoint boxes.
public struct PacketSet: Hashable, Sendable {
    public var boxes: [PacketBox]
    /// The union of boxes the caller knows to be disjoint (use `union` to combine overlapping ones).
    public init(_ boxes: [PacketBox] = []) { self.boxes = boxes.filter { !$0.isEmpty } }
    public var isEmpty: Bool { boxes.isEmpty }

    /// The part inside a union of cubes, and the disjoint remainder. Exact: the two are disjoint and their
    /// union is `self`.
    public func split(by cubes: [PacketBox]) -> (matched: PacketSet, remainder: PacketSet) {
        let (m, r) = splitUncompacted(by: cubes)
        return (m.compacted(), r.compacted())
    }

    /// `split` without merging the pieces afterwards (the evaluator merges when the lists grow).
    func splitUncompacted(by cubes: [PacketBox]) -> (matched: PacketSet, remainder: PacketSet) {
        splitUncompacted(by: cubes.map(Cube.init))
    }

    func splitUncompacted(by cubes: [Cube]) -> (matched: PacketSet, remainder: PacketSet) {
        var matched: [PacketBox] = []
        var rest = boxes
        for cube in cubes {
            var next: [PacketBox] = []
            next.reserveCapacity(rest.count)
            for box in rest {
                if cube.touches(box) {
                    matched.append(cube.intersection(box))
                    next.append(contentsOf: box.subtracting(cube))
                } else {
                    next.append(box)
                }
            }
            rest = next
        }
        var m = PacketSet(), r = PacketSet()
        m.boxes = matched
        r.boxes = rest
        return (m, r)
    }

    public func intersection(_ cube: PacketBox) -> PacketSet { split(by: [cube]).matched }
    public func intersection(_ other: PacketSet) -> PacketSet {
        PacketSet(boxes.flatMap { b in other.boxes.map { b.intersection($0) } }).compacted()
    }
    public func subtracting(_ cube: PacketBox) -> PacketSet { split(by: [cube]).remainder }
    public func subtracting(_ other: PacketSet) -> PacketSet {
        var r = self
        for cube in other.boxes { r = r.subtracting(cube) }
        return r
    }
    public func union(_ other: PacketSet) -> PacketSet {
        // Keep the union disjoint: add only the part of `other` not already covered.
        PacketSet(boxes + other.subtracting(self).boxes).compacted()
    }

    /// Merges boxes that differ in a single field, to keep unions small. Exact: two disjoint boxes equal in every
    /// other field (and in their shadows) are one box. Each pass groups the boxes by a fingerprint of all fields
    /// but one, so it stays linear in the number of boxes; equality settles fingerprint collisions.
    public func compacted() -> PacketSet {
        guard boxes.count > 1, let fieldCount = boxes.first?.fields.count else { return self }
        var list = boxes
        var prints = list.map(Fingerprint.init)
        var changed = true
        while changed, list.count > 1 {
            changed = false
            for f in 0..<fieldCount {
                var groups: [UInt64: [Int]] = [:]
                var removed = Set<Int>()
                for i in list.indices {
                    let key = prints[i].without(f)
                    if let candidates = groups[key],
                       let j = candidates.first(where: { list[$0].equal(list[i], except: f) }) {
                        list[j].fields[f] = list[j].fields[f] | list[i].fields[f]
                        prints[j].update(f, list[j].fields[f])
                        removed.insert(i)
                        changed = true
                    } else {
                        groups[key, default: []].append(i)
                    }
                }
                if !removed.isEmpty {
                    list = list.indices.filter { !removed.contains($0) }.map { list[$0] }
                    prints = prints.indices.filter { !removed.contains($0) }.map { prints[$0] }
                }
            }
        }
        var r = PacketSet()
        r.boxes = list
        return r
    }
}

/// Per-field folds of a box's words, so "all fields but one" can be fingerprinted without rehashing.
struct Fingerprint {
    var fields: [UInt64]
    var shadows: UInt64
    var total: UInt64

    init(_ b: PacketBox) {
        fields = b.fields.map(\.fold)
        var sh: UInt64 = 0
        for (i, s) in b.shadows.enumerated() { sh ^= Fingerprint.spread(s.map { $0.fold &+ 1 } ?? 0, 97 &+ i) }
        shadows = sh
        total = 0
        for (i, v) in fields.enumerated() { total ^= Fingerprint.spread(v, i) }
        total ^= shadows
    }

    static func spread(_ v: UInt64, _ i: Int) -> UInt64 {
        (v &+ UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15) &* 0xBF58_476D_1CE4_E5B9
    }

    func without(_ f: Int) -> UInt64 { total ^ Fingerprint.spread(fields[f], f) }

    mutating func update(_ f: Int, _ set: AtomSet) {
        total ^= Fingerprint.spread(fields[f], f)
        fields[f] = set.fold
        total ^= Fingerprint.spread(fields[f], f)
    }
}

extension PacketBox {
    /// Equal in every field but `f`, and in the shadows.
    func equal(_ other: PacketBox, except f: Int) -> Bool {
        guard shadows == other.shadows else { return false }
        for i in fields.indices where i != f && fields[i] != other.fields[i] { return false }
        return true
    }
}

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
public struct SpaceHints: Sendable {
    public var addresses: [AddressMatch] = []
    public var ports: [UInt16] = []
    public var ids: [UInt32] = []
    public var interfaces: [String] = []
    public var marks: [UInt32] = []
    public var protocols: [UInt16] = []
    public init() {}
}

/// The atoms of every field for one family, cut at every boundary the family's rules (and the hints) mention.
public struct PacketSpace: Sendable {
    public let family: Family
    let domains: [FieldDomain]
    /// Mark values reachable from the tested and set values, kept apart so effects map atom to atom.
    let markValues: [UInt32]
    let connmarkValues: [UInt32]

    public init(family: Family, tables: [Table], hints: SpaceHints = SpaceHints()) {
        self.family = family
        let rules = tables.filter { $0.family == family }.flatMap { $0.chains.flatMap(\.rules) }
        let addressMax: UInt128 = family == .ipv4 ? 0xFFFF_FFFF : UInt128.max

        var protoCuts: Set<UInt128> = [0, 6, 7, 17, 18]
        var addressCuts: Set<UInt128> = [0]
        var portCuts: Set<UInt128> = [0]
        var idCuts: Set<UInt128> = [0]
        var exactNames: Set<String> = ["lo", "eth0"]
        var wildcards: Set<String> = []
        var markTests: [MarkMatch] = []
        var connmarkTests: [MarkMatch] = []

        func cut(_ set: inout Set<UInt128>, _ lo: UInt128, _ hi: UInt128, max: UInt128) {
            set.insert(lo)
            if hi < max { set.insert(hi + 1) }
        }
        func address(_ a: AddressMatch?) {
            guard let a, a.address.family == family, let r = a.interval else { return }
            cut(&addressCuts, r.lowerBound, r.upperBound, max: addressMax)
        }
        func port(_ r: ClosedRange<UInt16>) { cut(&portCuts, UInt128(r.lowerBound), UInt128(r.upperBound), max: 65535) }
        func id(_ r: ClosedRange<UInt32>) { cut(&idCuts, UInt128(r.lowerBound), UInt128(r.upperBound), max: UInt128(UInt32.max)) }
        func interface(_ i: InterfaceMatch?) {
            guard let i else { return }
            if i.wildcard { wildcards.insert(i.name) } else { exactNames.insert(i.name) }
        }

        for rule in rules {
            address(rule.source)
            address(rule.destination)
            interface(rule.inInterface)
            interface(rule.outInterface)
            if let p = rule.protocol { cut(&protoCuts, UInt128(p.number), UInt128(p.number), max: 255) }
            for m in rule.matches {
                switch m {
                case .tcp(let t):
                    if let p = t.sourcePort { port(p.range) }
                    if let p = t.destinationPort { port(p.range) }
                case .udp(let u):
                    if let p = u.sourcePort { port(p.range) }
                    if let p = u.destinationPort { port(p.range) }
                case .multiport(let mp): mp.ports.forEach(port)
                case .owner(let o):
                    if let u = o.uid { id(u.range) }
                    if let g = o.gid { id(g.range) }
                case .mark(let mm): markTests.append(mm)
                case .connmark(let mm): connmarkTests.append(mm)
                case .conntrack(let c):
                    if let l4 = c.l4Protocol { cut(&protoCuts, UInt128(l4.value), UInt128(l4.value), max: 255) }
                default: break
                }
            }
        }
        for a in hints.addresses { address(a) }
        for p in hints.ports { port(p...p) }
        for i in hints.ids { id(i...i) }
        for n in hints.interfaces { exactNames.insert(n) }
        for p in hints.protocols { cut(&protoCuts, UInt128(p), UInt128(p), max: 255) }

        let (marks, connmarks) = PacketSpace.markClosure(rules: rules, markTests: markTests,
                                                         connmarkTests: connmarkTests, hints: hints.marks)
        markValues = marks
        connmarkValues = connmarks

        let protoDomain = FieldDomain.intervals(starts: protoCuts.filter { $0 <= 255 }.sorted(), maximum: 255)
        let addressDomain = FieldDomain.intervals(starts: addressCuts.sorted(), maximum: addressMax)
        let portDomain = FieldDomain.intervals(starts: portCuts.sorted(), maximum: 65535)
        let idDomain = FieldDomain.intervals(starts: idCuts.sorted(), maximum: UInt128(UInt32.max))
        let nameDomain = FieldDomain.names(PacketSpace.interfaceClasses(exact: exactNames, wildcards: wildcards))
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
    /// MARK / CONNMARK / TPROXY the rules can apply.
    static func markClosure(rules: [Rule], markTests: [MarkMatch], connmarkTests: [MarkMatch], hints: [UInt32]) -> ([UInt32], [UInt32]) {
        func noneMatching(_ tests: [MarkMatch]) -> UInt32 {
            let candidates: [UInt32] = [0, 0x7FFF_0000, 0xDEAD_0001, 0x1, 0xFFFF_FFFF]
            return candidates.first { c in !tests.contains { ($0.value & $0.mask) == (c & $0.mask) } } ?? 0
        }
        var marks: Set<UInt32> = [0, noneMatching(markTests)]
        var connmarks: Set<UInt32> = [0, noneMatching(connmarkTests)]
        for t in markTests { marks.insert(t.value) }
        for t in connmarkTests { connmarks.insert(t.value) }
        for h in hints { marks.insert(h); connmarks.insert(h) }
        let targets = rules.map(\.target)
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
    public func atomCount(_ f: PacketField) -> Int { domains[f.rawValue].count }

    /// Every packet.
    public var universe: PacketBox {
        PacketBox(fields: PacketField.allCases.map { AtomSet(capacity: domains[$0.rawValue].count, full: true) })
    }
    public func full(_ f: PacketField) -> AtomSet { AtomSet(capacity: atomCount(f), full: true) }
    public func empty(_ f: PacketField) -> AtomSet { AtomSet(capacity: atomCount(f)) }

    // MARK: atoms by condition

    /// Atoms of a numeric field inside any of the ranges (ranges must be unions of atoms, which the cuts ensure).
    public func atoms(_ f: PacketField, inRanges ranges: [ClosedRange<UInt128>]) -> AtomSet {
        let d = domain(f)
        var set = AtomSet(capacity: d.count)
        for r in ranges {
            // Atoms are sorted intervals: the ones inside a range are those from the atom holding its start
            // up to the atom holding its end (whose start must lie inside the range).
            guard let first = d.atom(containing: r.lowerBound) else { continue }
            let last = d.atom(containing: min(r.upperBound, d.maximum)) ?? first
            for a in first...max(first, last) {
                guard let iv = d.interval(a), r.contains(iv.lowerBound) else { continue }
                set.words[a / 64] |= 1 << UInt64(a % 64)
            }
        }
        return set
    }
    public func atoms(_ f: PacketField, values: [UInt128]) -> AtomSet { atoms(f, inRanges: values.map { $0...$0 }) }
    public func atoms(ports: [UInt16], field: PacketField = .destinationPort) -> AtomSet {
        atoms(field, values: ports.map { UInt128($0) })
    }
    public func atoms(ids: [UInt32], field: PacketField) -> AtomSet { atoms(field, values: ids.map { UInt128($0) }) }
    public func atoms(protocols: [UInt16]) -> AtomSet { atoms(.l4Protocol, values: protocols.map { UInt128($0) }) }

    /// Atoms of an address field inside a CIDR (ignoring its inversion flag).
    public func atoms(_ f: PacketField, inside cidrs: [AddressMatch]) -> AtomSet {
        atoms(f, inRanges: cidrs.compactMap { $0.address.family == family ? $0.interval : nil })
    }

    public func atoms(_ f: PacketField, interfaces match: (String) -> Bool) -> AtomSet {
        guard case .names(let names) = domain(f) else { return empty(f) }
        return AtomSet(capacity: names.count, atoms: names.indices.filter { match(names[$0]) })
    }
    public func atoms(_ f: PacketField, interfaceNamed name: String) -> AtomSet { atoms(f, interfaces: { $0 == name }) }
    /// The "no interface" atom (input interface of locally generated packets, output interface before routing).
    public func noInterface(_ f: PacketField) -> AtomSet { atoms(f, interfaces: { $0.isEmpty }) }

    public func atoms(_ f: PacketField, marks match: (UInt32) -> Bool) -> AtomSet {
        guard case .values(let values) = domain(f) else { return empty(f) }
        return AtomSet(capacity: values.count, atoms: values.indices.filter { match(values[$0]) })
    }
    public func atoms(states: [ConntrackState]) -> AtomSet {
        AtomSet(capacity: ConntrackState.allCases.count,
                atoms: states.compactMap { ConntrackState.allCases.firstIndex(of: $0) })
    }

    // MARK: values of atoms

    func interval(_ f: PacketField, _ atom: Int) -> ClosedRange<UInt128>? { domain(f).interval(atom) }
    func name(_ f: PacketField, _ atom: Int) -> String? {
        guard case .names(let n) = domain(f), atom < n.count else { return nil }
        return n[atom]
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

    /// The atom of a concrete value of each field, for turning a packet into a box.
    public func box(for packet: Packet) -> PacketBox? {
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

/// CONNMARK arithmetic as `xt_CONNMARK` revision 1/2 does it.
enum ConnmarkEffect {
    static func apply(_ c: ConnmarkTarget, mark: UInt32, connmark: UInt32) -> (mark: UInt32, connmark: UInt32) {
        func shift(_ v: UInt32) -> UInt32 {
            guard c.shiftBits > 0 else { return v }
            return c.shiftLeft ? v << UInt32(c.shiftBits) : v >> UInt32(c.shiftBits)
        }
        switch c.mode {
        case .set(let value, let mask):
            return (mark, (connmark & ~mask) ^ value)
        case .save(let nfmask, let ctmask):
            return (mark, (connmark & ~ctmask) ^ shift(mark & nfmask))
        case .restore(let nfmask, let ctmask):
            return ((mark & ~nfmask) ^ shift(connmark & ctmask), connmark)
        }
    }
}

extension PacketSpace {
    /// Whether a concrete packet (its values as it entered) belongs to a packet set.
    public func contains(_ set: PacketSet, _ packet: Packet) -> Bool {
        guard let point = box(for: packet) else { return false }
        return set.boxes.contains { b in
            PacketField.allCases.allSatisfy { f in
                let own = b.input(f)
                return !(point[f] & own).isEmpty && (point[f] & own) == point[f]
            }
        }
    }

    /// A packet built from one atom per field (its representative), for sampling the space.
    public func packet(atoms: [PacketField: Int]) -> Packet {
        var b = universe
        for (f, a) in atoms { b[f] = AtomSet(capacity: atomCount(f), atoms: [a]) }
        return representative(of: b)
    }
}
