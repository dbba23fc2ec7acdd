/// How text from the input appears in a message, defined once: every error that echoes a value, a line or a
/// file name goes through here, so a message is one line of bounded length whatever the input held.
///
/// Escaped: C0 controls (newline, CR and tab as `\n`, `\r`, `\t`, the rest as `\u{1B}`), DEL, C1 controls,
/// the line and paragraph separators and every bidirectional control (U+061C, U+200E–U+200F, U+202A–U+202E,
/// U+2066–U+2069), which could otherwise move the cursor, end the line or reorder what a terminal shows.
public enum MessageText {
    /// The most of one input value a message quotes (in Unicode scalars, escapes counted), before "…".
    public static let excerptLimit = 120
    /// The most of one message line, whatever it holds.
    public static let lineLimit = 1000

    /// `"value"` with quotes and backslashes escaped too, cut to `limit`.
    public static func quoted(_ value: some StringProtocol, limit: Int = excerptLimit) -> String {
        "\"" + escaped(value, limit: limit, quoting: true) + "\""
    }

    /// An excerpt of input (a file name, a line) without quotes, cut to `limit`.
    public static func excerpt(_ text: some StringProtocol, limit: Int = excerptLimit) -> String {
        escaped(text, limit: limit, quoting: false)
    }

    /// A whole message made safe to print: escaped and cut to `lineLimit`. `keepingNewlines` keeps the line breaks
    /// of a message written on several lines (a usage text) and bounds each line instead.
    public static func line(_ message: some StringProtocol, keepingNewlines: Bool = false) -> String {
        guard keepingNewlines else { return escaped(message, limit: lineLimit, quoting: false) }
        return message.split(separator: "\n", omittingEmptySubsequences: false)
            .map { escaped($0, limit: lineLimit, quoting: false) }.joined(separator: "\n")
    }

    /// Whether a scalar is escaped: it could break the line or change how the rest of it is displayed.
    public static func needsEscape(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    /// Escapes `text` and keeps at most `limit` scalars of the result, the last of them "…" when it was cut;
    /// an escape is kept whole or not at all.
    static func escaped(_ text: some StringProtocol, limit: Int, quoting: Bool) -> String {
        var out = String.UnicodeScalarView()
        var count = 0
        // What was kept before the piece that would pass `limit - 1`: the text if it is cut there.
        var cutAt: (index: String.UnicodeScalarView.Index, found: Bool) = (out.startIndex, false)
        for s in text.unicodeScalars {
            let piece: String.UnicodeScalarView
            switch s {
            case "\n": piece = "\\n".unicodeScalars
            case "\r": piece = "\\r".unicodeScalars
            case "\t": piece = "\\t".unicodeScalars
            case "\"" where quoting: piece = "\\\"".unicodeScalars
            case "\\" where quoting: piece = "\\\\".unicodeScalars
            case _ where needsEscape(s): piece = ("\\u{" + String(s.value, radix: 16, uppercase: true) + "}").unicodeScalars
            default: piece = String.UnicodeScalarView([s])
            }
            let n = piece.count
            if !cutAt.found && count + n > limit - 1 { cutAt = (out.endIndex, true) }
            if count + n > limit {
                var cut = String.UnicodeScalarView(out[..<cutAt.index])
                cut.append("…")
                return String(cut)
            }
            out.append(contentsOf: piece)
            count += n
        }
        return String(out)
    }
}
