import NetfilterModel

/// A set of atoms of one field's domain.
///
/// Address domains of large tables have tens of thousands of atoms while the sets boxes hold are mostly "one
/// address" or "all but these few": those are kept as a short sorted list (of the members, or of the
/// non-members), everything else as a bitset. Domains of at most 64 atoms (protocols, interfaces, marks, states:
/// most fields of most boxes) keep their one word inline, so copying a box does not allocate or retain for them.
/// The form is canonical, so equality and hashing are structural.
struct AtomSet: Hashable, Sendable {
    let capacity: Int
    var storage: Storage

    enum Storage: Hashable, Sendable {
        case dense([UInt64])
        /// Sorted atoms: the members, or (inverted) the non-members.
        case sparse([Int], inverted: Bool)
        /// The bitset of a domain of at most 64 atoms.
        case word(UInt64)
    }

    /// Sets with at most this many members or non-members are lists (in domains wider than `denseOnly` words).
    static let sparseLimit = 48
    static let denseOnlyWords = 4

    init(capacity: Int, full: Bool = false) {
        self.capacity = capacity
        if capacity <= 64 {
            storage = .word(full ? AtomSet.low(capacity) : 0)
        } else {
            storage = .sparse([], inverted: full)
            normalize()
        }
    }

    /// The word with the low `capacity` bits set.
    static func low(_ capacity: Int) -> UInt64 { capacity >= 64 ? ~0 : (1 << UInt64(capacity)) &- 1 }

    init(capacity: Int, atoms: some Sequence<Int>) {
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

    /// A set of a domain of at most 64 atoms, from its word (already within the capacity).
    private init(capacity: Int, word: UInt64) {
        self.capacity = capacity
        storage = .word(word)
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
        case .word(let x): return [x]
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
        if capacity <= 64 {
            switch storage {
            case .word: return
            case .dense(let w): storage = .word(w.first ?? 0)
            case .sparse: storage = .word(words.first ?? 0)
            }
            return
        }
        let small = wordCount <= AtomSet.denseOnlyWords
        switch storage {
        case .word(let x):
            // Only built for small domains; kept total.
            var w = [UInt64](repeating: 0, count: wordCount)
            w[0] = x
            storage = .dense(w)
            normalize()
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

    var count: Int {
        switch storage {
        case .dense(let w):
            var n = 0
            for x in w { n &+= x.nonzeroBitCount }
            return n
        case .word(let x): return x.nonzeroBitCount
        case .sparse(let list, let inverted): return inverted ? capacity - list.count : list.count
        }
    }
    var isEmpty: Bool {
        switch storage {
        case .dense(let w):
            for x in w where x != 0 { return false }
            return true
        case .word(let x): return x == 0
        case .sparse(let list, let inverted): return inverted ? list.count == capacity : list.isEmpty
        }
    }
    var isFull: Bool {
        switch storage {
        case .dense: return count == capacity
        case .word(let x): return x == AtomSet.low(capacity)
        case .sparse(let list, let inverted): return inverted ? list.isEmpty : list.count == capacity
        }
    }

    func contains(_ atom: Int) -> Bool {
        guard atom >= 0, atom < capacity else { return false }
        switch storage {
        case .dense(let w): return w[atom / 64] & (1 << UInt64(atom % 64)) != 0
        case .word(let x): return x & (1 << UInt64(atom)) != 0
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
    var atoms: [Int] {
        switch storage {
        case .dense(let w): return AtomSet.members(w)
        case .word(let x): return AtomSet.members([x])
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
    var first: Int? {
        switch storage {
        case .sparse(let list, false): return list.first
        case .sparse(let list, true):
            var a = 0
            for x in list { if x == a { a += 1 } else { break } }
            return a < capacity ? a : nil
        case .dense(let w):
            for (i, word) in w.enumerated() where word != 0 { return i * 64 + word.trailingZeroBitCount }
            return nil
        case .word(let x): return x == 0 ? nil : x.trailingZeroBitCount
        }
    }

    static func & (a: AtomSet, b: AtomSet) -> AtomSet {
        switch (a.storage, b.storage) {
        case (.word(let x), .word(let y)): return AtomSet(capacity: a.capacity, word: x & y)
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
        case (.word, _), (_, .word):
            // Only sets of different capacities mix forms.
            return AtomSet(capacity: a.capacity, dense: zip(a.words, b.words).map { $0 & $1 })
        }
    }

    static func | (a: AtomSet, b: AtomSet) -> AtomSet {
        switch (a.storage, b.storage) {
        case (.word(let x), .word(let y)): return AtomSet(capacity: a.capacity, word: x | y)
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
        case (.word, _), (_, .word):
            return AtomSet(capacity: a.capacity, dense: zip(a.words, b.words).map { $0 | $1 })
        }
    }

    func subtracting(_ b: AtomSet) -> AtomSet {
        switch (storage, b.storage) {
        case (.word(let x), .word(let y)): return AtomSet(capacity: capacity, word: x & ~y)
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

    var complement: AtomSet {
        switch storage {
        case .word(let x): return AtomSet(capacity: capacity, word: ~x & AtomSet.low(capacity))
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
        case (.word(let x), .word(let y)): return x & y != 0
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

    /// Whether every atom of the set is in `b`, without building the difference.
    func isSubset(of b: AtomSet) -> Bool {
        switch (storage, b.storage) {
        case (.word(let x), .word(let y)): return x & ~y == 0
        case (_, .sparse([], true)): return true
        case (.sparse(let s, false), _): return s.allSatisfy(b.contains)
        case (.dense(let x), .dense(let y)):
            for i in x.indices where x[i] & ~y[i] != 0 { return false }
            return true
        default: return subtracting(b).isEmpty
        }
    }

    /// One number standing for the set, cheap to combine (merging boxes fingerprints many large sets).
    var fold: UInt64 {
        switch storage {
        case .word(let x):
            // As the one-word bitset would fold.
            let f = UInt64(truncatingIfNeeded: capacity)
            return (f &<< 7 | f &>> 57) ^ x
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
    func hash(into hasher: inout Hasher) { hasher.combine(fold) }
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
            // Whole words at a time: a /16 over a large address domain spans thousands of atoms.
            var w = [UInt64](repeating: 0, count: (capacity + 63) / 64)
            let first = lo / 64, last = hi / 64
            for i in first...last {
                var word: UInt64 = ~0
                if i == first { word &= ~0 << UInt64(lo % 64) }
                if i == last { word &= ~0 >> UInt64(63 - hi % 64) }
                w[i] = word
            }
            self.init(capacity: capacity, dense: w)
        }
    }
}
