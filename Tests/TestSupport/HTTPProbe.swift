import Foundation
import Glibc

/// A plain HTTP/1.x client over a socket, so the tests see the server's bytes (status line, headers) with no
/// URLSession in between. Every socket has 5 s send and receive timeouts.
public struct HTTPReply: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: String
}

public enum HTTPProbe {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Sends one request with `Connection: close` and reads the reply to the end.
    public static func request(_ method: String = "GET", _ target: String, host: String = "127.0.0.1", port: Int,
                        version: String = "HTTP/1.1") throws -> HTTPReply {
        let fd = try connect(host: host, port: port)
        defer { close(fd) }
        let hostHeader = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let request = "\(method) \(target) \(version)\r\nHost: \(hostHeader)\r\nConnection: close\r\nUser-Agent: iptaudit-tests\r\n\r\n"
        let sent = request.utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
        guard sent == request.utf8.count else { throw Failure(description: "send to \(hostHeader) failed: \(String(cString: strerror(errno)))") }
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { break }
            guard n > 0 else { throw Failure(description: "reading \(target) from \(hostHeader) failed: \(String(cString: strerror(errno)))") }
            data += buffer[0..<n]
            guard data.count < 64 << 20 else { throw Failure(description: "reply from \(hostHeader) larger than 64 MiB") }
        }
        return try parse(data, from: hostHeader)
    }

    static func parse(_ data: [UInt8], from peer: String) throws -> HTTPReply {
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw Failure(description: "no complete header from \(peer): \(text.prefix(200))") }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ", maxSplits: 2)
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/"), let status = Int(statusParts[1]) else {
            throw Failure(description: "bad status line from \(peer): \(lines[0])")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return HTTPReply(status: status, headers: headers, body: String(text[split.upperBound...]))
    }

    public static func connect(host: String, port: Int) throws -> Int32 {
        let v6 = host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result: Int32
        if v6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET6, host, &address.sin6_addr)
            result = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET, host, &address.sin_addr)
            result = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw ConnectFailure(errno: code, description: "connect to \(host):\(port): \(String(cString: strerror(code)))")
        }
        return fd
    }

    public struct ConnectFailure: Error, CustomStringConvertible {
        public var errno: Int32
        public var description: String
    }

    /// A loopback port free right now (bound to port 0, read back, closed), for a server that takes a fixed port.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { throw Failure(description: "no free loopback port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Polls `probe` every `every` until it returns a value; gives up once `limit` has passed *and* at least
/// `minimumPolls` polls were made (each bounded by the probe's own socket timeouts). The second bound is for the
/// shared executor: while the suite's blocking tests hold its threads, a wall-clock limit alone can run out before
/// the server under test (which needs the same threads) had a turn. The error names what was awaited and the last
/// thing seen.
public func waitFor<T>(_ what: String, limit: Duration = .seconds(60), every: Duration = .milliseconds(100),
                       minimumPolls: Int = 100, _ probe: () async throws -> (T?, String)) async throws -> T {
    let deadline = ContinuousClock.now + limit
    var last = ""
    var polls = 0
    while ContinuousClock.now < deadline || polls < minimumPolls {
        let (value, seen) = try await probe()
        if let value { return value }
        last = seen
        polls += 1
        try await Task.sleep(for: every)
    }
    throw HTTPProbe.Failure(description: "timed out after \(limit) and \(polls) polls waiting for \(what); last seen: \(last.prefix(2000))")
}

/// A value shared between a test and the closures it hands the server.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    public init(_ value: Value) { self.value = value }
    public func get() -> Value { lock.withLock { value } }
    public func set(_ newValue: Value) { lock.withLock { value = newValue } }
    @discardableResult public func update<R>(_ body: (inout Value) -> R) -> R { lock.withLock { body(&value) } }
}
