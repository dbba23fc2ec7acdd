import NetfilterModel
import Testing

@Suite("MessageText: how input is quoted in a message")
struct MessageTextTests {
    /// Every scalar a terminal would act on or reorder by, one per class.
    static let hostile: [Unicode.Scalar] = ["\u{0}", "\u{7}", "\u{8}", "\t", "\n", "\r", "\u{1B}", "\u{7F}", "\u{85}", "\u{9B}",
                                            "\u{61C}", "\u{200E}", "\u{200F}", "\u{2028}", "\u{2029}",
                                            "\u{202A}", "\u{202B}", "\u{202C}", "\u{202D}", "\u{202E}",
                                            "\u{2066}", "\u{2067}", "\u{2068}", "\u{2069}"]

    @Test(arguments: hostile)
    func controlAndBidiCharactersAreEscaped(_ scalar: Unicode.Scalar) {
        let input = "a" + String(Character(scalar)) + "b"
        for text in [MessageText.quoted(input), MessageText.excerpt(input), MessageText.line(input)] {
            #expect(!text.unicodeScalars.contains(where: MessageText.needsEscape), "\(text.debugDescription)")
            #expect(text.contains("a\\") && text.contains("b"))
        }
    }

    @Test func ordinaryTextIsUnchanged() {
        let text = "héllo wörld ✓ 漢字 -j ISTIO_REDIRECT"
        #expect(MessageText.excerpt(text) == text)
        #expect(MessageText.quoted(text) == "\"" + text + "\"")
        #expect(MessageText.line(text) == text)
    }

    @Test func quotesAndBackslashesAreEscapedInsideQuotes() {
        #expect(MessageText.quoted(#"a"b\c"#) == #""a\"b\\c""#)
    }

    @Test(arguments: [MessageText.excerptLimit - 1, MessageText.excerptLimit, MessageText.excerptLimit + 1, 100_000])
    func excerptsAreCutToTheLimitWithAnEllipsis(_ length: Int) {
        let text = String(repeating: "x", count: length)
        let excerpt = MessageText.excerpt(text)
        if length <= MessageText.excerptLimit {
            #expect(excerpt == text)
        } else {
            #expect(excerpt.unicodeScalars.count == MessageText.excerptLimit && excerpt.hasSuffix("…"))
        }
    }

    /// Escapes count against the limit: input made only of escaped scalars stays within it too.
    @Test func escapesCountAgainstTheLimit() {
        let text = String(repeating: "\u{202E}", count: 10_000)
        #expect(MessageText.excerpt(text).unicodeScalars.count <= MessageText.excerptLimit)
        #expect(MessageText.line(text).unicodeScalars.count <= MessageText.lineLimit)
        // Escapes are kept whole: the cut text ends with a complete one, then the ellipsis.
        #expect(MessageText.excerpt(text).hasSuffix("\\u{202E}…"))
        // One grapheme of many combining marks is cut by scalars, not kept whole.
        let combining = "e" + String(repeating: "\u{301}", count: 10_000)
        #expect(MessageText.line(combining).unicodeScalars.count <= MessageText.lineLimit)
    }

    @Test func keepingNewlinesBoundsEachLine() {
        let text = "first\n" + String(repeating: "y", count: 5_000) + "\nthird\u{1B}"
        let lines = MessageText.line(text, keepingNewlines: true).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3)
        #expect(lines[0] == "first" && lines[2] == "third\\u{1B}")
        #expect(lines[1].unicodeScalars.count == MessageText.lineLimit)
    }
}
