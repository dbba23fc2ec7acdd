/// UTF-8 text built by appending bytes in place: save syntax for a node's 100k-rule table as one buffer instead
/// of hundreds of thousands of interpolated and concatenated Strings (which cost most of rendering it).
public struct TextBuffer {
    public private(set) var bytes: [UInt8] = []

    public init(reservingCapacity capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    /// The text as a String (one copy, with UTF-8 validation).
    public var string: String { String(decoding: bytes, as: UTF8.self) }

    /// A literal, copied as bytes.
    public mutating func append(_ literal: StaticString) {
        literal.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    public mutating func append(contentsOf text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    public mutating func append(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes.append(contentsOf: bytes)
    }

    public mutating func append(byte: UInt8) {
        bytes.append(byte)
    }

    /// `value` in decimal, as `"\(value)"` prints it. Concrete overloads, so formatting a port or an address
    /// octet never goes through generic integer conversions.
    public mutating func append(decimal value: UInt64) { appendDigits(value, radix: 10) }
    public mutating func append(decimal value: UInt32) { appendDigits(UInt64(value), radix: 10) }
    public mutating func append(decimal value: UInt16) { appendDigits(UInt64(value), radix: 10) }
    public mutating func append(decimal value: UInt8) { appendDigits(UInt64(value), radix: 10) }
    public mutating func append(decimal value: Int) {
        if value < 0 { bytes.append(0x2D) }
        appendDigits(UInt64(value.magnitude), radix: 10)
    }

    /// `value` in lowercase hexadecimal with a `0x` prefix, as `"0x" + String(value, radix: 16)` prints it.
    public mutating func append(hex value: UInt32) {
        bytes.append(0x30)
        bytes.append(0x78)
        appendDigits(UInt64(value), radix: 16)
    }

    /// `String(value, radix: 16)` without a prefix (lowercase).
    public mutating func append(hexDigits value: UInt8) {
        appendDigits(UInt64(value), radix: 16)
    }

    /// Digits most significant first, straight into the buffer: most numbers in save syntax are address octets
    /// and ports, for which a scratch buffer and a copy cost more than the digits.
    private mutating func appendDigits(_ value: UInt64, radix: UInt64) {
        // The place value of the leading digit; `scale <= value / radix` keeps `scale * radix` from overflowing.
        var scale: UInt64 = 1
        while scale <= value / radix { scale *= radix }
        var v = value
        repeat {
            let digit = UInt8(truncatingIfNeeded: v / scale)
            bytes.append(digit < 10 ? 0x30 &+ digit : 0x57 &+ digit)
            v %= scale
            scale /= radix
        } while scale > 0
    }
}
