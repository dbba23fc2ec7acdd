import Glibc

/// Where the server binds: a numeric IPv4 address or a bracketed IPv6 one, and a port (0: the kernel picks one,
/// and the server reports it). Numeric only, so binding never waits on a name lookup.
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `ADDR:PORT`: `0.0.0.0:9180`, `127.0.0.1:0`, `[::]:9180`, `[::1]:9180`.
    public init(parsing text: String) throws(ListenAddressError) {
        let host: Substring, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ListenAddressError(text: text)
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
            guard Self.isNumeric(host, family: AF_INET6) else { throw ListenAddressError(text: text) }
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw ListenAddressError(text: text) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard Self.isNumeric(host, family: AF_INET) else { throw ListenAddressError(text: text) }
        }
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), portText.count <= 5,
              let port = Int(portText), port <= 65535 else { throw ListenAddressError(text: text) }
        self.init(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// inet_pton(3) accepts exactly the numeric spellings of the family.
    private static func isNumeric(_ host: Substring, family: Int32) -> Bool {
        guard !host.isEmpty, host.count <= 64 else { return false }
        var buffer = (UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &buffer) { inet_pton(family, String(host), $0.baseAddress) == 1 }
    }
}

/// A `--listen` value that is not `ADDR:PORT` with a numeric address.
public struct ListenAddressError: Error, Sendable, CustomStringConvertible {
    public var text: String
    public var description: String {
        "expected ADDR:PORT with a numeric IPv4 address or a bracketed IPv6 one (0.0.0.0:9180, [::]:9180, 127.0.0.1:0)"
    }
}
