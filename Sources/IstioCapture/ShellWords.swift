/// Splits a pasted command line into words the way a POSIX shell would, without expanding anything.
///
/// Users copy istio-init's arguments from `kubectl describe` or a manifest, so `-x ""`, `-i '*'` and
/// backslash-escaped characters must come out exactly as istio-iptables received them.
enum ShellWords {
    static func split(_ text: String) throws(IstioCaptureError) -> [String] {
        var words: [String] = []
        var current = ""
        // A word exists once anything (even an empty quote pair) was seen since the last separator.
        var inWord = false
        var chars = Array(text)
        chars.append(" ")
        var i = 0
        while i < chars.count {
            let c = chars[i]
            switch c {
            case " ", "\t", "\n", "\r":
                if inWord {
                    words.append(current)
                    current = ""
                    inWord = false
                }
            case "'":
                inWord = true
                i += 1
                while i < chars.count - 1, chars[i] != "'" {
                    current.append(chars[i])
                    i += 1
                }
                guard i < chars.count - 1 else { throw .unbalancedQuote(text) }
            case "\"":
                inWord = true
                i += 1
                while i < chars.count - 1, chars[i] != "\"" {
                    // Inside double quotes a backslash only escapes \ " $ ` and newline.
                    if chars[i] == "\\", i + 1 < chars.count - 1, "\\\"$`\n".contains(chars[i + 1]) {
                        if chars[i + 1] != "\n" { current.append(chars[i + 1]) }
                        i += 2
                        continue
                    }
                    current.append(chars[i])
                    i += 1
                }
                guard i < chars.count - 1 else { throw .unbalancedQuote(text) }
            case "\\":
                if i + 1 < chars.count - 1 {
                    // Backslash-newline is a line continuation, anything else is taken literally.
                    if chars[i + 1] != "\n" {
                        current.append(chars[i + 1])
                        inWord = true
                    }
                    i += 1
                } else {
                    current.append("\\")
                    inWord = true
                }
            default:
                current.append(c)
                inWord = true
            }
            i += 1
        }
        return words
    }
}

extension ShellWords {
    /// Words as a shell would need them typed: plain ones bare, others single-quoted (`-b '*'`, `-x ''`).
    static func join(_ words: [String]) -> String {
        words.map { w in
            let plain = !w.isEmpty && w.allSatisfy { $0.isLetter || $0.isNumber || "-_=.,/:@%+".contains($0) }
            return plain ? w : "'" + w.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
        }.joined(separator: " ")
    }
}
