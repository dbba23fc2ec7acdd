import NetfilterModel
import Testing

@Suite("TextBuffer")
struct TextBufferTests {
    /// Appends of every kind and size, through many growths from the smallest buffer, against the same text built
    /// as a String.
    @Test func holdsExactlyWhatWasAppendedAcrossGrowth() {
        var buffer = TextBuffer()
        var expected = ""
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return seed >> 11
        }
        for i in 0..<5_000 {
            switch next() % 6 {
            case 0:
                let word = String(repeating: "ab-ü", count: Int(next() % 40))
                buffer.append(contentsOf: word)
                expected += word
            case 1:
                buffer.append(" -A ")
                expected += " -A "
            case 2:
                let v = next() >> (next() % 64)
                buffer.append(decimal: v)
                expected += String(v)
            case 3:
                let v = UInt32(truncatingIfNeeded: next() >> (next() % 64))
                buffer.append(hex: v)
                expected += "0x" + String(v, radix: 16)
            case 4:
                buffer.append(byte: UInt8(0x61 + i % 26))
                expected.unicodeScalars.append(Unicode.Scalar(UInt8(0x61 + i % 26)))
            default:
                let bytes = Array("[\(i)]".utf8)
                bytes.withUnsafeBufferPointer { buffer.append(bytes: $0) }
                expected += "[\(i)]"
            }
        }
        #expect(buffer.string == expected)
        #expect(buffer.count == expected.utf8.count)
        #expect(buffer.withBytes { Array($0) } == Array(expected.utf8))
    }

    /// A StaticString made as a unicode-scalar literal holds the scalar, not a pointer (`utf8Start` would trap).
    @Test func aSingleScalarLiteralIsAppendedToo() throws {
        func scalarLiteral<T: ExpressibleByUnicodeScalarLiteral>(_: T.Type) -> T { "\u{e9}" }
        let single = scalarLiteral(StaticString.self)
        try #require(!single.hasPointerRepresentation)
        var buffer = TextBuffer()
        buffer.append(single)
        buffer.append("x")
        #expect(buffer.string == "\u{e9}x")
    }

    @Test func numbersPrintAsSwiftPrintsThem() {
        for v: UInt64 in [0, 1, 9, 10, 15, 16, 99, 100, 255, 256, 65_535, 1 << 32, UInt64.max - 1, UInt64.max] {
            var decimal = TextBuffer()
            decimal.append(decimal: v)
            #expect(decimal.string == String(v))
        }
        for v: Int in [0, -1, -10, Int.min, Int.max] {
            var decimal = TextBuffer()
            decimal.append(decimal: v)
            #expect(decimal.string == String(v))
        }
        for v: UInt32 in [0, 0xf, 0x10, 0x4000, 0xffff_ffff] {
            var hex = TextBuffer()
            hex.append(hex: v)
            #expect(hex.string == "0x" + String(v, radix: 16))
        }
        var empty = TextBuffer(reservingCapacity: 0)
        empty.append(contentsOf: "")
        #expect(empty.string == "" && empty.count == 0)
    }
}
