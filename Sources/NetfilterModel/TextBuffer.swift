/// UTF-8 text built by appending bytes in place: save syntax for a node's 100k-rule table as one buffer instead
/// of hundreds of thousands of interpolated and concatenated Strings (which cost most of rendering it).
///
/// Its own memory rather than an `[UInt8]`: a rule is a dozen short appends, and the array's uniqueness and
/// capacity checks around each `append(contentsOf:)` were an eighth of rendering a large table (17 M of 132 M
/// instructions for 11,000 rules). Not copyable, so the memory has one owner and no copy can alias it.
public struct TextBuffer: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    public private(set) var count = 0

    public init(reservingCapacity capacity: Int = 0) {
        self.capacity = max(capacity, 64)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// The text as a String (one copy, with UTF-8 validation).
    public var string: String { String(decoding: UnsafeBufferPointer(start: base, count: count), as: UTF8.self) }

    /// The bytes written so far, valid during `body`.
    public func withBytes<R, E: Error>(_ body: (UnsafeBufferPointer<UInt8>) throws(E) -> R) throws(E) -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }

    /// A literal, copied as bytes.
    public mutating func append(_ literal: StaticString) {
        if literal.hasPointerRepresentation {
            append(bytes: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
        } else {
            // A single-scalar literal has no pointer to read (`utf8Start` would trap).
            literal.withUTF8Buffer { append(bytes: $0) }
        }
    }

    public mutating func append(contentsOf text: String) {
        var text = text
        text.withUTF8 { append(bytes: $0) }
    }

    public mutating func append(bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress else { return }
        reserve(bytes.count)
        (base + count).update(from: source, count: bytes.count)
        count += bytes.count
    }

    public mutating func append(byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    /// `value` in decimal, as `"\(value)"` prints it. Concrete overloads, so formatting a port or an address
    /// octet never goes through generic integer conversions.
    public mutating func append(decimal value: UInt64) { appendDigits(value, radix: 10) }
    public mutating func append(decimal value: UInt32) { appendDigits(UInt64(value), radix: 10) }
    public mutating func append(decimal value: UInt16) { appendDigits(UInt64(value), radix: 10) }
    public mutating func append(decimal value: UInt8) { appendDigits(UInt64(value), radix: 10) }
    public mutating func append(decimal value: Int) {
        if value < 0 { append(byte: 0x2D) }
        appendDigits(UInt64(value.magnitude), radix: 10)
    }

    /// `value` in lowercase hexadecimal with a `0x` prefix, as `"0x" + String(value, radix: 16)` prints it.
    public mutating func append(hex value: UInt32) {
        append(byte: 0x30)
        append(byte: 0x78)
        appendDigits(UInt64(value), radix: 16)
    }

    /// `String(value, radix: 16)` without a prefix (lowercase).
    public mutating func append(hexDigits value: UInt8) {
        appendDigits(UInt64(value), radix: 16)
    }

    /// Room for `extra` more bytes, growing geometrically.
    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(extra) }
    }

    @inline(never)
    private mutating func grow(_ extra: Int) {
        let grown = max(capacity * 2, count + extra)
        let new = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        new.moveInitialize(from: base, count: count)
        base.deallocate()
        base = new
        capacity = grown
    }

    /// Digits most significant first, straight into the buffer: most numbers in save syntax are address octets
    /// and ports, for which a scratch buffer and a copy cost more than the digits.
    private mutating func appendDigits(_ value: UInt64, radix: UInt64) {
        // The place value of the leading digit; `scale <= value / radix` keeps `scale * radix` from overflowing.
        var scale: UInt64 = 1
        var digits = 1
        while scale <= value / radix {
            scale *= radix
            digits += 1
        }
        reserve(digits)
        var v = value
        var at = base + count
        repeat {
            let digit = UInt8(truncatingIfNeeded: v / scale)
            at.pointee = digit < 10 ? 0x30 &+ digit : 0x57 &+ digit
            at += 1
            v %= scale
            scale /= radix
        } while scale > 0
        count += digits
    }
}
