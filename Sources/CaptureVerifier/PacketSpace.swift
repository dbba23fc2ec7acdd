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

/// A set of atoms of one field's domain.
///
/// Address domains of large tables have tens of thousands of atoms while the sets boxes hold are mostly "one
/// address" or "all but these few": those are kept as a short sorted list (of the members, or of the
/// non-members), everything else as a bitset. The form is canonical, so equality and hashing are structural.
public struct AtomSet: Hashable, Sendable {
    public let capacity: Int
    var storage: Storage

    enum Storage: Hashable, Sendable {
        case dense([UInt64])
        /// Sorted atoms: the members, or (inverted) the non-members.
        case sparse([Int], inverted: Bool)
    }

    /// Sets with at most this many members or non-members are lists (in domains wider than `denseOnly` words).
    static let sparseLimit = 48
    static let denseOnlyWords = 4

    public init(capacity: Int, full: Bool = false) {
        self.capacity = capacity
        storage = .sparse([], inverted: full)
        normalize()
    }

    public init(capacity: Int, atoms: some Sequence<Int>) {
        self.capacity = capacity
        var list = atoms.filter { $0 >= 0 && $0 < capacity }
        // Most callers pass one atom, or atoms already ascending: no need to sort them.
        if !zip(list, list.dropFirst()).allSatisfy({ $0 < $1 }) { list = Array(Set(list)).sorted() }
        storage = .sparse(list, inverted: false)
        normalize()
    }

    init(capacity: Int, dense words: [UInt64]) {
        var w = words
        AtomSet.trim(&w, capacity)
        self.init(capacity: capacity, storage: .dense(w))
    }

    private init(capacity: Int, storage: Storage) {
        self.capacity = capacity
        self.storage = storage
        normalize()
    }

    var wordCount: Int { (capacity + 63) / 64 }

    /// The bitset of the set (built on demand for lists).
    var words: [UInt64] {
        switch storage {
        case .dense(let w): return w
        case .sparse(let list, let inverted):
            var w = [UInt64](repeating: inverted ? ~0 : 0, count: wordCount)
            for a in list { w[a / 64] ^= 1 << UInt64(a % 64) }
            if inverted { AtomSet.trim(&w, capacity) }
            return w
        }
    }

    static func trim(_ w: inout [UInt64], _ capacity: Int) {
        let extra = w.count * 64 - capacity
        if extra > 0, !w.isEmpty { w[w.count - 1] &= ~0 >> UInt64(extra) }
    }

    /// Puts the set in its canonical form.
    private mutating func normalize() {
        let small = wordCount <= AtomSet.denseOnlyWords
        switch storage {
        case .dense(let w):
            if small { return }
            // Count members only as far as needed: past the limit both ways, it stays a bitset.
            var n = 0, seen = 0
            for x in w {
                n &+= x.nonzeroBitCount
                seen &+= 64
                if n > AtomSet.sparseLimit, min(seen, capacity) - n > AtomSet.sparseLimit { return }
            }
            if n <= AtomSet.sparseLimit {
                storage = .sparse(AtomSet.members(w), inverted: false)
            } else if capacity - n <= AtomSet.sparseLimit {
                var inv = w.map { ~$0 }
                AtomSet.trim(&inv, capacity)
                storage = .sparse(AtomSet.members(inv), inverted: true)
            }
        case .sparse(let list, _):
            if small || list.count > AtomSet.sparseLimit {
                storage = .dense(words)
                // A long list of members can still be a short list of non-members.
                if !small { normalize() }
            }
        }
    }

    static func members(_ w: [UInt64]) -> [Int] {
        var out: [Int] = []
        for (i, word) in w.enumerated() where word != 0 {
            var x = word
            while x != 0 {
                out.append(i * 64 + x.trailingZeroBitCount)
                x &= x - 1
            }
        }
        return out
    }

    public var count: Int {
        switch storage {
        case .dense(let w):
            var n = 0
            for x in w { n &+= x.nonzeroBitCount }
            return n
        case .sparse(let list, let inverted): return inverted ? capacity - list.count : list.count
        }
    }
    public var isEmpty: Bool {
        switch storage {
        case .dense(let w):
            for x in w where x != 0 { return false }
            return true
        case .sparse(let list, let inverted): return inverted ? list.count == capacity : list.isEmpty
        }
    }
    public var isFull: Bool {
        switch storage {
        case .dense: return count == capacity
        case .sparse(let list, let inverted): return inverted ? list.isEmpty : list.count == capacity
        }
    }

    public func contains(_ atom: Int) -> Bool {
        guard atom >= 0, atom < capacity else { return false }
        switch storage {
        case .dense(let w): return w[atom / 64] & (1 << UInt64(atom % 64)) != 0
        case .sparse(let list, let inverted): return AtomSet.binarySearch(list, atom) != inverted
        }
    }

    /// The union of two ascending lists without repeats, ascending.
    static func mergeSorted(_ a: [Int], _ b: [Int]) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0, j = 0
        while i < a.count, j < b.count {
            if a[i] < b[j] { out.append(a[i]); i += 1 } else if b[j] < a[i] { out.append(b[j]); j += 1 } else { out.append(a[i]); i += 1; j += 1 }
        }
        out.append(contentsOf: a[i...])
        out.append(contentsOf: b[j...])
        return out
    }

    static func binarySearch(_ list: [Int], _ x: Int) -> Bool {
        var lo = 0, hi = list.count - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            if list[mid] == x { return true }
            if list[mid] < x { lo = mid + 1 } else { hi = mid - 1 }
        }
        return false
    }

    /// Atom indices in ascending order.
    public var atoms: [Int] {
        switch storage {
        case .dense(let w): return AtomSet.members(w)
        case .sparse(let list, false): return list
        case .sparse(let list, true):
            var out: [Int] = []
            out.reserveCapacity(capacity - list.count)
            var j = 0
            for a in 0..<capacity {
                if j < list.count, list[j] == a { j += 1 } else { out.append(a) }
            }
            return out
        }
    }
    public var first: Int? {
        switch storage {
        case .sparse(let list, false): return list.first
        case .sparse(let list, true):
            var a = 0
            for x in list { if x == a { a += 1 } else { break } }
            return a < capacity ? a : nil
        case .dense(let w):
            for (i, word) in w.enumerated() where word != 0 { return i * 64 + word.trailingZeroBitCount }
            return nil
        }
    }

    public static func & (a: AtomSet, b: AtomSet) -> AtomSet {
        switch (a.storage, b.storage) {
        case (.dense(let x), .dense(let y)):
            return AtomSet(capacity: a.capacity, storage: .dense(zip(x, y).map { $0 & $1 }))
        case (.sparse(let s, false), _):
            return AtomSet(capacity: a.capacity, storage: .sparse(s.filter(b.contains), inverted: false))
        case (_, .sparse(let s, false)):
            return AtomSet(capacity: a.capacity, storage: .sparse(s.filter(a.contains), inverted: false))
        case (.sparse(let t, true), .sparse(let u, true)):
            return AtomSet(capacity: a.capacity, storage: .sparse(AtomSet.mergeSorted(t, u), inverted: true))
        case (.sparse(let t, true), .dense(var w)), (.dense(var w), .sparse(let t, true)):
            for x in t { w[x / 64] &= ~(1 << UInt64(x % 64)) }
            return AtomSet(capacity: a.capacity, storage: .dense(w))
        }
    }

    public static func | (a: AtomSet, b: AtomSet) -> AtomSet {
        switch (a.storage, b.storage) {
        case (.dense(let x), .dense(let y)):
            return AtomSet(capacity: a.capacity, storage: .dense(zip(x, y).map { $0 | $1 }))
        case (.sparse(let t, true), _):
            return AtomSet(capacity: a.capacity, storage: .sparse(t.filter { !b.contains($0) }, inverted: true))
        case (_, .sparse(let t, true)):
            return AtomSet(capacity: a.capacity, storage: .sparse(t.filter { !a.contains($0) }, inverted: true))
        case (.sparse(let s, false), .sparse(let u, false)):
            return AtomSet(capacity: a.capacity, storage: .sparse(AtomSet.mergeSorted(s, u), inverted: false))
        case (.sparse(let s, false), .dense(var w)), (.dense(var w), .sparse(let s, false)):
            for x in s { w[x / 64] |= 1 << UInt64(x % 64) }
            return AtomSet(capacity: a.capacity, storage: .dense(w))
        }
    }

    public func subtracting(_ b: AtomSet) -> AtomSet {
        switch (storage, b.storage) {
        case (.dense(var x), .dense(let y)):
            for i in x.indices { x[i] &= ~y[i] }
            return AtomSet(capacity: capacity, storage: .dense(x))
        case (.sparse(let s, false), _):
            return AtomSet(capacity: capacity, storage: .sparse(s.filter { !b.contains($0) }, inverted: false))
        case (.dense(var x), .sparse(let t, false)):
            for a in t { x[a / 64] &= ~(1 << UInt64(a % 64)) }
            return AtomSet(capacity: capacity, storage: .dense(x))
        default:
            return self & b.complement
        }
    }

    public var complement: AtomSet {
        switch storage {
        case .sparse(let list, let inverted): return AtomSet(capacity: capacity, storage: .sparse(list, inverted: !inverted))
        case .dense(let w):
            var inv = w.map { ~$0 }
            AtomSet.trim(&inv, capacity)
            return AtomSet(capacity: capacity, storage: .dense(inv))
        }
    }

    /// Whether the two sets share an atom, without building the intersection.
    func intersects(_ b: AtomSet) -> Bool {
        switch (storage, b.storage) {
        case (.sparse(let s, false), _): return s.contains(where: b.contains)
        case (_, .sparse(let s, false)): return s.contains(where: contains)
        case (.dense(let x), .dense(let y)):
            for i in x.indices where x[i] & y[i] != 0 { return true }
            return false
        default:
            // At least one side is "all but a few": they meet unless the other lies within those few.
            return !(self & b).isEmpty
        }
    }

    /// One number standing for the set, cheap to combine (merging boxes fingerprints many large sets).
    var fold: UInt64 {
        switch storage {
        case .dense(let w):
            var f = UInt64(truncatingIfNeeded: capacity)
            for x in w { f = (f &<< 7 | f &>> 57) ^ x }
            return f
        case .sparse(let list, let inverted):
            var f = UInt64(truncatingIfNeeded: capacity) ^ (inverted ? 0x5555_5555_5555_5555 : 0)
            for x in list { f = (f &<< 7 | f &>> 57) ^ UInt64(truncatingIfNeeded: x) &* 0x9E37_79B9_7F4A_7C15 }
            return f
        }
    }
    public func hash(into hasher: inout Hasher) { hasher.combine(fold) }
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
    }

    /// The part of the box inside the cube (only the constrained fields change).
    func intersection(_ b: PacketBox) -> PacketBox {
        var r = b
        for f in constrained { r.fields[f] = b.fields[f] & box.fields[f] }
        return r
    }

    /// Whether the box shares a packet with the cube.
    func touches(_ b: PacketBox) -> Bool {
        for f in constrained where !b.fields[f].intersects(box.fields[f]) { return false }
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

        // The atoms are cut where the rules' conditions draw their boundaries.
        for rule in rules {
            for c in rule.conditions(family: family, spelled: false) {
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
            var lo = first
            if let iv = d.interval(first), !r.contains(iv.lowerBound) { lo += 1 }
            guard lo <= last else { continue }
            set = set | AtomSet(capacity: d.count, range: lo...last)
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

extension AtomSet {
    /// A contiguous run of atoms.
    init(capacity: Int, range: ClosedRange<Int>) {
        let lo = max(0, range.lowerBound), hi = min(capacity - 1, range.upperBound)
        guard lo <= hi else {
            self.init(capacity: capacity)
            return
        }
        if hi - lo + 1 <= AtomSet.sparseLimit {
            self.init(capacity: capacity, atoms: lo...hi)
        } else if capacity - (hi - lo + 1) <= AtomSet.sparseLimit {
            self.init(capacity: capacity, atoms: Array(0..<lo) + Array((hi + 1)..<capacity))
            self = complement
        } else {
            var w = [UInt64](repeating: 0, count: (capacity + 63) / 64)
            for a in lo...hi { w[a / 64] |= 1 << UInt64(a % 64) }
            self.init(capacity: capacity, dense: w)
        }
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
