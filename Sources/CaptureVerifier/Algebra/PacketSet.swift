import NetfilterModel

/// A box: per field, a set of atoms. It stands for every packet whose field values fall in those atoms.
///
/// Rules only ever test `fields`. Once an effect changed a field, `shadows` keeps the set that field had on
/// input (nil while unchanged); effects split boxes so the changed field is a function of the shadow,
/// which keeps the box an exact product.
struct PacketBox: Hashable, Sendable {
    var fields: FieldSets
    var shadows: ShadowSets

    init(fields: [AtomSet]) {
        self.fields = FieldSets(fields)
        shadows = ShadowSets()
    }

    subscript(_ f: PacketField) -> AtomSet {
        get { fields[f.rawValue] }
        set { fields[f.rawValue] = newValue }
    }
    /// The field's value as the packet entered.
    func input(_ f: PacketField) -> AtomSet {
        f.shadowIndex.flatMap { shadows[$0] } ?? fields[f.rawValue]
    }
    var isEmpty: Bool {
        for i in 0..<fields.count where fields[i].isEmpty { return true }
        return false
    }
    /// One packet of the box, as a box: the first atom of every field.
    var point: PacketBox {
        var p = self
        for i in 0..<fields.count {
            if let a = fields[i].first { p.fields[i] = AtomSet(capacity: fields[i].capacity, atoms: [a]) }
        }
        return p
    }

    func intersection(_ cube: PacketBox) -> PacketBox {
        var r = self
        for i in fields.indices { r.fields[i] = fields[i] & cube.fields[i] }
        return r
    }

    /// `self \ cube` as disjoint boxes: for each field the cube constrains, the part that agrees with the cube
    /// on the earlier fields and disagrees on this one.
    func subtracting(_ cube: PacketBox) -> [PacketBox] { subtracting(Cube(cube)) }

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
/// many boxes). A class: it never changes once built, and every split would otherwise copy its inline box.
final class Cube: Sendable {
    let box: PacketBox
    /// Fields that are not full, least selective first.
    let constrained: [Int]

    init(_ box: PacketBox) {
        self.box = box
        // Any order of the constrained fields gives an exact, disjoint difference; putting the most selective
        // field last (a /32 destination, one port) keeps a long chain's remainder in few boxes: its "not this
        // address" piece is narrowed rule after rule instead of a new piece being split off each time.
        let fields = box.fields
        // Each field's share of its domain, counted once (not at every comparison of the sort).
        var shares: [(share: Double, field: Int)] = []
        for i in 0..<fields.count where !fields[i].isFull {
            shares.append((Double(fields[i].count) / Double(max(1, fields[i].capacity)), i))
        }
        shares.sort { a, b in a.share != b.share ? a.share > b.share : a.field < b.field }
        constrained = shares.map(\.field)
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

    /// How many pieces `b.subtracting(self)` leaves: -1 when the box and the cube are disjoint, 0 when the
    /// box is inside the cube.
    func piecesLeft(_ b: PacketBox) -> Int {
        var outside = 0
        for f in constrained {
            let set = b.fields[f], c = box.fields[f]
            if !set.intersects(c) { return -1 }
            if !set.isSubset(of: c) { outside += 1 }
        }
        return outside
    }

    enum Relation { case disjoint, inside, overlaps }

    /// How the box lies against the cube; splitting skips building pieces for boxes wholly on one side.
    func relation(_ b: PacketBox) -> Relation {
        var inside = true
        for f in constrained {
            let set = b.fields[f], c = box.fields[f]
            if !set.intersects(c) { return .disjoint }
            if inside, !set.isSubset(of: c) { inside = false }
        }
        return inside ? .inside : .overlaps
    }
}

/// Cubes taken out of a set without splitting its boxes yet, newest first. Immutable and shared: each rule of a
/// long chain adds one to its remainder, and the matched and unmatched parts both keep the list before it.
final class HoleList: Hashable, Sendable {
    let cube: Cube
    let next: HoleList?
    let count: Int

    init(_ cube: Cube, next: HoleList?) {
        self.cube = cube
        self.next = next
        count = (next?.count ?? 0) + 1
    }

    /// The same cubes in the same order (two walks that took the same rules are equal).
    static func == (a: HoleList, b: HoleList) -> Bool {
        guard a.count == b.count else { return false }
        var x: HoleList? = a, y: HoleList? = b
        while let m = x, let n = y, m !== n {
            guard m.cube.box == n.cube.box else { return false }
            x = m.next
            y = n.next
        }
        return true
    }
    func hash(into h: inout Hasher) {
        h.combine(count)
        h.combine(cube.box)
    }
}

/// A packet class: a union of disjoint boxes, less the union of `holes` when it has any.
///
/// Subtracting eagerly cuts a box into a piece per constrained field, so a chain of rules that each test
/// different fields leaves a remainder of tens of thousands of boxes after a few hundred rules
/// (docs/benchmarks.md, the varied shape). A set past `SymbolicDomain.lazyAt` boxes keeps its remainder as
/// "these boxes less these cubes" instead, with one member kept to say it is not empty; it is split into boxes
/// only where a caller asks for them (`boxes`).
struct PacketSet: Hashable, Sendable {
    /// Disjoint boxes.
    private var base: [PacketBox]
    /// What is taken out of `base`; nil for a plain union of boxes.
    private(set) var holes: HoleList?
    /// With holes, one member (one atom per field), nil when nothing is left.
    private var member: PacketBox?

    /// The union of boxes the caller knows to be disjoint (use `union` to combine overlapping ones).
    init(_ boxes: [PacketBox] = []) { base = boxes.filter { !$0.isEmpty } }

    /// The disjoint boxes of the set (a set with holes is split into them here, which can be large).
    var boxes: [PacketBox] {
        get { holes == nil ? base : materialized().base }
        set {
            base = newValue
            holes = nil
            member = nil
        }
    }
    var isLazy: Bool { holes != nil }
    var isEmpty: Bool { holes == nil ? base.isEmpty : member == nil }
    /// The boxes held before the holes are taken out (what a rule step splits).
    var baseCount: Int { base.count }

    /// `base` less the holes, kept unsplit, with a member found depth first.
    static func lazy(_ base: [PacketBox], less holes: HoleList?, member known: PacketBox? = nil) -> PacketSet {
        var s = PacketSet(base)
        guard let holes, !s.base.isEmpty else { return s }
        s.holes = holes
        s.member = known ?? PacketSet.member(of: s.base, less: holes)
        return s
    }

    /// A member of `base` less `holes`, as a box of one atom per field; nil when the holes cover it.
    static func member(of base: [PacketBox], less holes: HoleList) -> PacketBox? {
        pieces(of: base, less: holes, upTo: 1).first?.point
    }

    /// Up to `limit` disjoint boxes of `base` less `holes`, depth first: a box meets the holes in turn, a hole
    /// that cuts it leaves pieces that meet only the holes after it, and a piece no hole touches is in the set.
    /// A set with something left usually yields its first box on the first path.
    ///
    /// Every box met is a step of the run's `WalkBudget`: holes that overlap every which way can make the search
    /// long, and past the budget it gives up (the run is void then, and says so).
    static func pieces(of base: [PacketBox], less holes: HoleList, upTo limit: Int) -> [PacketBox] {
        var found: [PacketBox] = []
        var stack: [(box: PacketBox, hole: HoleList?)] = base.reversed().map { ($0, holes) }
        let budget = WalkBudget.current
        var met = 0
        search: while found.count < limit, let (box, first) = stack.popLast() {
            met += 1
            if met == 1024 {
                let more = budget?.take(met) ?? true
                met = 0
                if !more { break }
            }
            var node = first
            while let n = node {
                switch n.cube.relation(box) {
                case .disjoint:
                    node = n.next
                case .inside:
                    continue search
                case .overlaps:
                    for piece in box.subtracting(n.cube).reversed() { stack.append((piece, n.next)) }
                    continue search
                }
            }
            found.append(box)
        }
        _ = budget?.take(met)
        return found
    }

    /// Some of the set's disjoint boxes, all of them for a set without holes: what a witness is chosen among
    /// without cutting a large remainder into all its boxes.
    func someBoxes(upTo limit: Int) -> [PacketBox] {
        guard let holes else { return base }
        return member == nil ? [] : PacketSet.pieces(of: base, less: holes, upTo: limit)
    }

    /// The set as disjoint boxes: the holes cut out, merging as the list grows.
    func materialized() -> PacketSet {
        guard holes != nil else { return self }
        guard member != nil else { return PacketSet() }
        let (boxes, _) = cuttingHoles { _ in true }
        return PacketSet(boxes).compacted()
    }

    /// The boxes with the holes `cut` picks cut out of them, and the other holes, in their order: an effect that
    /// rewrites some fields may be applied box by box once the holes testing those fields are cut, and the holes
    /// it leaves still hold after it. Each box a cut leaves is a step of the run's `WalkBudget` (a remainder can
    /// be cut into hundreds of thousands); past the budget the cutting stops, and the run is void.
    func cuttingHoles(_ cut: (Cube) -> Bool) -> (boxes: [PacketBox], kept: HoleList?) {
        guard holes != nil else { return (base, nil) }
        guard member != nil else { return ([], nil) }
        let budget = WalkBudget.current
        var rest = PacketSet(base)
        var compactAt = 16
        var kept: [Cube] = []
        var node = holes
        while let n = node {
            node = n.next
            guard cut(n.cube) else {
                kept.append(n.cube)
                continue
            }
            guard !rest.base.isEmpty else { continue }
            rest = rest.splitUncompacted(by: [n.cube]).remainder
            if rest.base.count > compactAt {
                rest = rest.compacted()
                compactAt = max(16, rest.base.count * 2)
            }
            if let budget, !budget.take(rest.base.count) { break }
        }
        var list: HoleList?
        for c in kept.reversed() { list = HoleList(c, next: list) }
        return (rest.base, list)
    }

    /// The holes that test any of these fields cut out, the others kept (`cuttingHoles`).
    func cuttingHoles(testing fields: [PacketField]) -> (boxes: [PacketBox], kept: HoleList?) {
        cuttingHoles { cube in fields.contains { cube.constrained.contains($0.rawValue) } }
    }

    /// The part inside a union of disjoint cubes (a rule's, or one), and the disjoint remainder. Exact: the two
    /// are disjoint and their union is `self`.
    func split(by cubes: [PacketBox]) -> (matched: PacketSet, remainder: PacketSet) {
        if isLazy { return splitLazily(by: cubes.map(Cube.init)) }
        let (m, r) = splitUncompacted(by: cubes)
        return (m.compacted(), r.compacted())
    }

    /// `split` without merging the pieces afterwards (the evaluator merges when the lists grow).
    func splitUncompacted(by cubes: [PacketBox]) -> (matched: PacketSet, remainder: PacketSet) {
        splitUncompacted(by: cubes.map(Cube.init))
    }

    func splitUncompacted(by cubes: [Cube]) -> (matched: PacketSet, remainder: PacketSet) {
        if isLazy { return splitLazily(by: cubes) }
        var matched: [PacketBox] = []
        var rest = base
        for cube in cubes {
            var next: [PacketBox] = []
            next.reserveCapacity(rest.count)
            for box in rest {
                switch cube.relation(box) {
                case .disjoint: next.append(box)
                // Inside the cube: the intersection is the box itself and nothing is left outside.
                case .inside: matched.append(box)
                case .overlaps:
                    matched.append(cube.intersection(box))
                    next.append(contentsOf: box.subtracting(cube))
                }
            }
            rest = next
        }
        var m = PacketSet(), r = PacketSet()
        m.base = matched
        r.base = rest
        return (m, r)
    }

    /// Holes touching the matched part this many or fewer: it is cut into boxes at once (cheap, and the
    /// checks then see plain boxes).
    static let materializeMatchedAt = 16

    /// `split` keeping the remainder unsplit: the cubes join the holes. The matched part is the base inside the
    /// cubes less only the holes that touch them (its boxes are disjoint because the cubes are).
    func splitLazily(by cubes: [Cube]) -> (matched: PacketSet, remainder: PacketSet) {
        if isEmpty { return (PacketSet(), PacketSet()) }
        var inside: [PacketBox] = []
        var meeting: [Cube] = []
        for cube in cubes {
            var meets = false
            for box in base {
                switch cube.relation(box) {
                case .disjoint: continue
                case .inside: inside.append(box)
                case .overlaps: inside.append(cube.intersection(box))
                }
                meets = true
            }
            if meets { meeting.append(cube) }
        }
        // A cube that meets none of the boxes takes nothing, and is no hole.
        if meeting.isEmpty { return (PacketSet(), self) }
        var touching: [Cube] = []
        var node = holes
        while let n = node {
            if meeting.contains(where: { $0.touches(n.cube.box) }) { touching.append(n.cube) }
            node = n.next
        }
        // Broad holes first: one that tests a single field cuts a box into at most one piece, so a proof that
        // the matched part is empty (a shadowed rule) narrows instead of branching.
        touching.sort { $0.constrained.count < $1.constrained.count }
        var kept: HoleList?
        for c in touching.reversed() { kept = HoleList(c, next: kept) }
        // The member of the whole, when a cube took it, is a member of the matched part.
        let taken = member.flatMap { m in meeting.contains { $0.touches(m) } ? m : nil }
        var matched = PacketSet.lazy(inside, less: kept, member: taken)
        if touching.count <= PacketSet.materializeMatchedAt { matched = matched.materialized() }
        return (matched, subtractingLazily(meeting))
    }

    /// The set less the cubes, kept unsplit.
    func subtractingLazily(_ cubes: [Cube]) -> PacketSet {
        if isEmpty { return PacketSet() }
        var all = holes
        for c in cubes { all = HoleList(c, next: all) }
        // The member stays one while no new hole takes it.
        let stays = member.flatMap { m in cubes.contains { $0.touches(m) } ? nil : m }
        return PacketSet.lazy(base, less: all, member: stays)
    }

    func intersection(_ cube: PacketBox) -> PacketSet { split(by: [cube]).matched }
    func intersection(_ other: PacketSet) -> PacketSet {
        if isLazy {
            // The holes stay holes of every pairwise intersection.
            let others = other.boxes
            return PacketSet.lazy(base.flatMap { b in others.map { b.intersection($0) } }, less: holes)
        }
        let others = other.boxes
        return PacketSet(base.flatMap { b in others.map { b.intersection($0) } }).compacted()
    }
    func subtracting(_ cube: PacketBox) -> PacketSet { split(by: [cube]).remainder }
    func subtracting(_ other: PacketSet) -> PacketSet {
        if isLazy { return subtractingLazily(other.boxes.map(Cube.init)) }
        var r = self
        for cube in other.boxes { r = r.subtracting(cube) }
        return r
    }
    func union(_ other: PacketSet) -> PacketSet {
        // Keep the union disjoint: add only the part of `other` not already covered.
        PacketSet(boxes + other.subtracting(self).boxes).compacted()
    }

    /// Merges boxes that differ in a single field, to keep unions small. Exact: two disjoint boxes equal in every
    /// other field (and in their shadows) are one box. Each pass groups the boxes by a fingerprint of all fields
    /// but one, so it stays linear in the number of boxes; equality settles fingerprint collisions.
    func compacted() -> PacketSet {
        if isLazy { return materialized() }
        guard base.count > 1, let fieldCount = base.first?.fields.count else { return self }
        var list = base
        var prints = list.map(Fingerprint.init)
        var groups = FingerprintGroups(capacity: list.count)
        var next = [Int](repeating: -1, count: list.count)
        var removed = [Bool](repeating: false, count: list.count)
        var changed = true
        while changed, list.count > 1 {
            changed = false
            for f in 0..<fieldCount {
                groups.reset(capacity: list.count)
                if next.count < list.count { next = [Int](repeating: -1, count: list.count) }
                var anyRemoved = false
                for i in list.indices {
                    next[i] = -1
                    removed[i] = false
                    let key = prints[i].without(f)
                    // Candidates with the same fingerprint, in the order they were added: the first equal one
                    // takes this box in.
                    var j = groups.first(key)
                    var last = -1
                    while j >= 0, !list[j].equal(list[i], except: f) {
                        last = j
                        j = next[j]
                    }
                    if j >= 0 {
                        list[j].fields[f] = list[j].fields[f] | list[i].fields[f]
                        prints[j].update(f, list[j].fields[f])
                        removed[i] = true
                        anyRemoved = true
                        changed = true
                    } else if last >= 0 {
                        next[last] = i
                    } else {
                        groups.insert(key, i)
                    }
                }
                if anyRemoved {
                    var k = 0
                    for i in list.indices where !removed[i] {
                        if k != i {
                            list.swapAt(k, i)
                            prints.swapAt(k, i)
                        }
                        k += 1
                    }
                    list.removeLast(list.count - k)
                    prints.removeLast(prints.count - k)
                }
            }
        }
        var r = PacketSet()
        r.base = list
        return r
    }
}

/// Fingerprint → first box index, open addressing: `compacted` groups thousands of boxes per field pass, and a
/// `Dictionary` of arrays spent most of its time hashing and allocating.
struct FingerprintGroups {
    private var keys: [UInt64] = []
    private var heads: [Int] = []
    private var mask = 0

    init(capacity: Int) { reset(capacity: capacity) }

    mutating func reset(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        if heads.count == size {
            for i in heads.indices { heads[i] = -1 }
        } else {
            keys = [UInt64](repeating: 0, count: size)
            heads = [Int](repeating: -1, count: size)
        }
        mask = size - 1
    }

    /// The first index added under the key, or -1.
    func first(_ key: UInt64) -> Int {
        var slot = Int(truncatingIfNeeded: key ^ (key >> 29)) & mask
        while heads[slot] >= 0 {
            if keys[slot] == key { return heads[slot] }
            slot = (slot + 1) & mask
        }
        return -1
    }

    mutating func insert(_ key: UInt64, _ index: Int) {
        var slot = Int(truncatingIfNeeded: key ^ (key >> 29)) & mask
        while heads[slot] >= 0 { slot = (slot + 1) & mask }
        keys[slot] = key
        heads[slot] = index
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

/// A box's twelve field sets, stored inline: boxes are copied and split millions of times on large tables, and an
/// array per box cost an allocation and twelve retains each time.
struct FieldSets: RandomAccessCollection, MutableCollection, Hashable, Sendable {
    private var s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11: AtomSet

    init(_ sets: [AtomSet]) {
        precondition(sets.count == PacketField.allCases.count, "one set per field")
        (s0, s1, s2, s3, s4, s5) = (sets[0], sets[1], sets[2], sets[3], sets[4], sets[5])
        (s6, s7, s8, s9, s10, s11) = (sets[6], sets[7], sets[8], sets[9], sets[10], sets[11])
    }

    var startIndex: Int { 0 }
    var endIndex: Int { 12 }

    subscript(i: Int) -> AtomSet {
        get {
            switch i {
            case 0: s0
            case 1: s1
            case 2: s2
            case 3: s3
            case 4: s4
            case 5: s5
            case 6: s6
            case 7: s7
            case 8: s8
            case 9: s9
            case 10: s10
            default: s11
            }
        }
        set {
            switch i {
            case 0: s0 = newValue
            case 1: s1 = newValue
            case 2: s2 = newValue
            case 3: s3 = newValue
            case 4: s4 = newValue
            case 5: s5 = newValue
            case 6: s6 = newValue
            case 7: s7 = newValue
            case 8: s8 = newValue
            case 9: s9 = newValue
            case 10: s10 = newValue
            default: s11 = newValue
            }
        }
    }
}

/// The input values of the fields effects can change (`PacketField.shadowed`), nil while unchanged; inline like
/// `FieldSets`.
struct ShadowSets: RandomAccessCollection, MutableCollection, Hashable, Sendable {
    private var s0: AtomSet?, s1: AtomSet?, s2: AtomSet?, s3: AtomSet?

    init() {}

    var startIndex: Int { 0 }
    var endIndex: Int { 4 }

    subscript(i: Int) -> AtomSet? {
        get {
            switch i {
            case 0: s0
            case 1: s1
            case 2: s2
            default: s3
            }
        }
        set {
            switch i {
            case 0: s0 = newValue
            case 1: s1 = newValue
            case 2: s2 = newValue
            default: s3 = newValue
            }
        }
    }
}

