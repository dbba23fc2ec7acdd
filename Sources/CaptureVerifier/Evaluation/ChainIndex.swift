import NetfilterModel

/// The rules of a long chain grouped by the atoms of one field they test, so that a packet set meets only the
/// rules that can match it (kube-proxy's KUBE-SERVICES: 10,000 rules, each testing one cluster IP).
///
/// The field's atoms are cut into classes: two atoms are in one class when exactly the same rules single them out.
/// Rules that do not single out a few atoms of the field are "wildcards". Between two wildcards, rules of
/// different classes test disjoint packets, so the walk does them in one batch (`segment`): the remainder is split
/// by class, each piece meets only its class's rules in order, and what none of them matched is joined again
/// before the next wildcard. A subset that matched a rule carries its class's rule list (`classRules`) on, and
/// skips the other rules of the chain for the rest of the walk (after a jump returns, say). Both are exact: a
/// skipped rule's conditions hold for no atom of the piece, and the key is a field no target changes inside a
/// table (marks are never the key), so the rule cannot match any packet of the piece.
struct ChainIndex: Sendable {
    /// The field the rules are indexed by.
    let field: PacketField
    /// Class of each atom of the field.
    let classOfAtom: [Int32]
    /// The atoms of each class.
    let classAtoms: [AtomSet]
    /// Per class, the (0-based, ascending) indices of the rules a piece of that class can match: its own and
    /// the wildcards.
    let classRules: [[Int]]
    /// Per class, its own rules only (ascending).
    let classOwnRules: [[Int]]
    /// Per rule, the first wildcard rule at or after it (the chain's length when none).
    let nextWildcard: [Int]

    /// Fields no target changes within one table walk (MARK/CONNMARK/TPROXY only touch marks; the loopback hop
    /// that rewrites interfaces happens between tables).
    static let keyFields: [PacketField] = [.destination, .source, .destinationPort, .sourcePort, .uid, .gid,
                                           .outInterface, .inInterface, .l4Protocol]
    /// Chains shorter than this are walked rule by rule.
    static let minimumRules = 64

    /// An index of the chain's rules when one pays: on the field where a piece must still walk the fewest rules
    /// (the wildcards, plus its class's own), if that is a small part of the chain. Nil for short chains and for
    /// chains no field splits well (then every rule is walked in turn, as before).
    init?(rules: [CompiledRule], space: PacketSpace) {
        guard rules.count >= ChainIndex.minimumRules else { return nil }
        var best: (field: PacketField, perPiece: Double, sets: [AtomSet?], wildcards: [Int])?
        for f in ChainIndex.keyFields {
            let capacity = space.atomCount(f)
            guard capacity > 1 else { continue }
            var sets: [AtomSet?] = []
            var wildcards: [Int] = []
            var mentions = 0
            sets.reserveCapacity(rules.count)
            for (i, r) in rules.enumerated() {
                guard let first = r.cubes.first else {
                    // Matches nothing: no piece meets it.
                    sets.append(AtomSet(capacity: capacity))
                    continue
                }
                var u = first.box.fields[f.rawValue]
                for c in r.cubes.dropFirst() { u = u | c.box.fields[f.rawValue] }
                let n = u.count
                if n <= 64 || n * 16 <= capacity {
                    sets.append(u)
                    mentions += n
                } else {
                    sets.append(nil)
                    wildcards.append(i)
                }
            }
            // At most this many classes; each piece walks the wildcards and its share of the mentions.
            let classes = min(capacity, mentions + 1)
            let perPiece = Double(wildcards.count) + Double(mentions) / Double(classes)
            // The class lists repeat the wildcards: bound their size.
            guard classes * wildcards.count + mentions <= rules.count * 64 + 65536 else { continue }
            if best == nil || perPiece < best!.perPiece { best = (f, perPiece, sets, wildcards) }
        }
        // Worth it when a piece walks a small part of the chain, and splitting the remainder by class (once per
        // run of class rules, each wildcard ends one) stays small next to walking every rule.
        guard let best, best.perPiece * 4 <= Double(rules.count),
              (best.wildcards.count + 1) * space.atomCount(best.field) <= 64 * rules.count else { return nil }

        let capacity = space.atomCount(best.field)
        var perAtom = [[Int32]](repeating: [], count: capacity)
        for (i, s) in best.sets.enumerated() {
            guard let s else { continue }
            for a in s.atoms { perAtom[a].append(Int32(i)) }
        }
        var classOf = [Int32](repeating: 0, count: capacity)
        var idOfSignature: [[Int32]: Int32] = [:]
        var signatures: [[Int32]] = []
        var members: [[Int]] = []
        for a in 0..<capacity {
            let sig = perAtom[a]
            let k: Int32
            if let known = idOfSignature[sig] {
                k = known
            } else {
                k = Int32(signatures.count)
                idOfSignature[sig] = k
                signatures.append(sig)
                members.append([])
            }
            classOf[a] = k
            members[Int(k)].append(a)
        }
        field = best.field
        var nextWildcard = [Int](repeating: rules.count, count: rules.count + 1)
        for i in stride(from: rules.count - 1, through: 0, by: -1) {
            nextWildcard[i] = best.sets[i] == nil ? i : nextWildcard[i + 1]
        }
        self.nextWildcard = nextWildcard
        classOwnRules = signatures.map { $0.map { Int($0) } }
        classOfAtom = classOf
        classAtoms = members.map { AtomSet(capacity: capacity, atoms: $0) }
        classRules = signatures.map { sig in
            // Both lists are ascending: merge them.
            var out: [Int] = []
            out.reserveCapacity(sig.count + best.wildcards.count)
            var i = 0, j = 0
            while i < sig.count || j < best.wildcards.count {
                if j >= best.wildcards.count || (i < sig.count && Int(sig[i]) < best.wildcards[j]) {
                    out.append(Int(sig[i])); i += 1
                } else {
                    out.append(best.wildcards[j]); j += 1
                }
            }
            return out
        }
    }

    /// Whether the rule singles out atoms of the key field (else it is a wildcard, walked by every piece).
    func isClassRule(_ index: Int) -> Bool { nextWildcard[index] != index }

    /// Walks the class rules `range` (no wildcard among them) in one batch: returns, in order, each subset that
    /// matched one of them (with the rule and the subset's class), and the remainder that matched none.
    /// The same as walking the rules one by one, without building the remainder after each.
    func segment(_ set: PacketSet, _ range: Range<Int>, rules: [CompiledRule]) -> (matched: [(rule: Int, classID: Int, set: PacketSet)], rest: PacketSet) {
        let f = field.rawValue
        let capacity = classOfAtom.count
        func hasRules(_ k: Int) -> Bool {
            let own = classOwnRules[k]
            let at = ChainIndex.next(in: own, atOrAfter: range.lowerBound, end: Int.max)
            return at < range.upperBound
        }
        var pieces: [Int: [PacketBox]] = [:]
        var rest: [PacketBox] = []
        var stamp = [Bool](repeating: false, count: classRules.count)
        var touched: [Int] = []
        for box in set.boxes {
            touched.removeAll(keepingCapacity: true)
            for a in box.fields[f].atoms {
                let k = Int(classOfAtom[a])
                if !stamp[k] {
                    stamp[k] = true
                    touched.append(k)
                }
            }
            for k in touched { stamp[k] = false }
            let active = touched.filter(hasRules)
            if active.isEmpty {
                rest.append(box)
                continue
            }
            var taken = [UInt64](repeating: 0, count: (capacity + 63) / 64)
            for k in active {
                var piece = box
                piece.fields[f] = box.fields[f] & classAtoms[k]
                for a in classAtoms[k].atoms { taken[a / 64] |= 1 << UInt64(a % 64) }
                pieces[k, default: []].append(piece)
            }
            var outside = box
            outside.fields[f] = box.fields[f].subtracting(AtomSet(capacity: capacity, dense: taken))
            if !outside.fields[f].isEmpty { rest.append(outside) }
        }
        var matched: [(rule: Int, classID: Int, set: PacketSet)] = []
        for k in pieces.keys.sorted() {
            var piece = PacketSet()
            piece.boxes = pieces[k]!
            let own = classOwnRules[k]
            var j = ChainIndex.next(in: own, atOrAfter: range.lowerBound, end: Int.max)
            var at = own.firstIndex(of: j) ?? own.count
            while at < own.count, own[at] < range.upperBound, !piece.isEmpty {
                j = own[at]
                let (m, r) = piece.splitUncompacted(by: rules[j].cubes)
                if !m.isEmpty { matched.append((j, k, m)) }
                piece = r
                at += 1
            }
            rest += piece.boxes
        }
        return (matched, PacketSet.joined(rest, on: f))
    }

    /// The first rule at or after `index` a piece of the class can match (the chain's length when none).
    static func next(in rules: [Int], atOrAfter index: Int, end: Int) -> Int {
        var lo = 0, hi = rules.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if rules[mid] < index { lo = mid + 1 } else { hi = mid }
        }
        return lo < rules.count ? rules[lo] : end
    }
}

extension PacketSet {
    /// The union of disjoint boxes, with boxes equal but for one field joined into one: one pass, building each
    /// joined field once (`compacted` joins pairwise, which is quadratic for thousands of single-atom pieces).
    static func joined(_ boxes: [PacketBox], on f: Int) -> PacketSet {
        guard boxes.count > 1 else {
            var s = PacketSet()
            s.boxes = boxes
            return s
        }
        var groups: [UInt64: [Int]] = [:]
        var reps: [PacketBox] = []
        var words: [[UInt64]?] = []
        for b in boxes {
            var key: UInt64 = 0
            for (i, set) in b.fields.enumerated() where i != f { key ^= Fingerprint.spread(set.fold, i) }
            for (i, sh) in b.shadows.enumerated() { key ^= Fingerprint.spread(sh.map { $0.fold &+ 1 } ?? 0, 97 &+ i) }
            if let j = groups[key]?.first(where: { reps[$0].equal(b, except: f) }) {
                if words[j] == nil { words[j] = reps[j].fields[f].words }
                switch b.fields[f].storage {
                case .sparse(let list, false):
                    for a in list { words[j]![a / 64] |= 1 << UInt64(a % 64) }
                default:
                    let w = b.fields[f].words
                    for i in w.indices { words[j]![i] |= w[i] }
                }
            } else {
                groups[key, default: []].append(reps.count)
                reps.append(b)
                words.append(nil)
            }
        }
        for j in reps.indices {
            if let w = words[j] { reps[j].fields[f] = AtomSet(capacity: reps[j].fields[f].capacity, dense: w) }
        }
        return PacketSet(reps).compacted()
    }
}
