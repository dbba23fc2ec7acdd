extension StringProtocol {
    /// The text without leading and trailing spaces and tabs (Unicode `Zs` and U+0009, as Foundation's
    /// `CharacterSet.whitespaces`); newlines are kept.
    public var trimmingWhitespace: String {
        func blank(_ c: Character) -> Bool { c.isWhitespace && !c.isNewline }
        guard let first = firstIndex(where: { !blank($0) }) else { return "" }
        let last = lastIndex(where: { !blank($0) })!
        return String(self[first...last])
    }
}
