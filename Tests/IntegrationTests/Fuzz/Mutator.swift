import Foundation

/// SplitMix64: a tiny deterministic generator, so a fuzz run is reproduced exactly from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The mutations the issue names, applied to a corpus file's bytes: byte flips, truncation, duplicated and
/// deleted lines, token swaps, deep nesting, huge numbers and control characters.
enum Mutation: CaseIterable {
    case flipByte, truncate, duplicateLine, deleteLine, swapTokens, deepNesting, hugeNumber, controlCharacters

    func apply(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        guard !bytes.isEmpty else { return Array("[".utf8) }
        switch self {
        case .flipByte:
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
            }
        case .truncate:
            bytes.removeSubrange(Int.random(in: 0..<bytes.count, using: &rng)...)
        case .duplicateLine, .deleteLine, .swapTokens:
            var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
            let i = Int.random(in: 0..<lines.count, using: &rng)
            if self == .duplicateLine {
                lines.insert(lines[i], at: Int.random(in: 0...lines.count, using: &rng))
            } else if self == .deleteLine {
                lines.remove(at: i)
            } else {
                var tokens = lines.flatMap { $0.split(separator: UInt8(ascii: " ")).map(Array.init) }
                guard tokens.count > 1 else { break }
                tokens.swapAt(Int.random(in: 0..<tokens.count, using: &rng), Int.random(in: 0..<tokens.count, using: &rng))
                // Put the swapped tokens back into the line structure: one token stream, re-split by line.
                var k = 0
                for (n, line) in lines.enumerated() {
                    let count = line.split(separator: UInt8(ascii: " ")).count
                    lines[n] = Array(tokens[k..<k + count].joined(separator: [UInt8(ascii: " ")]))
                    k += count
                }
            }
            bytes = Array(lines.joined(separator: [UInt8(ascii: "\n")]))
        case .deepNesting:
            let depth = [300, 5_000, 100_000].randomElement(using: &rng)!
            let at = Int.random(in: 0...bytes.count, using: &rng)
            let (open, close): (String, String) = [("[", "]"), ("{a: ", "}"), ("- ", "")].randomElement(using: &rng)!
            bytes.insert(contentsOf: Array((String(repeating: open, count: depth) + String(repeating: close, count: depth)).utf8), at: at)
        case .hugeNumber:
            let huge = ["99999999999999999999999", "-1", "4294967296", "65536", "0x", "1e309", "18446744073709551616"]
            let digits = bytes.indices.filter { bytes[$0] >= UInt8(ascii: "0") && bytes[$0] <= UInt8(ascii: "9") }
            guard let start = digits.randomElement(using: &rng) else { break }
            var end = start
            while end < bytes.count, bytes[end] >= UInt8(ascii: "0"), bytes[end] <= UInt8(ascii: "9") { end += 1 }
            bytes.replaceSubrange(start..<end, with: Array(huge.randomElement(using: &rng)!.utf8))
        case .controlCharacters:
            let controls: [[UInt8]] = [[0], [0x1B], Array("\u{1B}[2J".utf8), [UInt8(ascii: "\r")], [0x7F], Array("\u{202E}".utf8), [0xFF, 0xFE]]
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                bytes.insert(contentsOf: controls.randomElement(using: &rng)!, at: Int.random(in: 0...bytes.count, using: &rng))
            }
        }
        return bytes
    }
}
