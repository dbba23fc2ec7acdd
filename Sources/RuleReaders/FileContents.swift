import Glibc

/// Whole-file reads through open(2)/read(2): regular files, pipes (`--input <(iptables-save)`,
/// `--pod <(kubectl get pod -o yaml)`), /proc files and standard input alike.
public enum FileContents {
    /// Why a read failed: the errno of the call that failed (`ENOENT`, `EISDIR`, `EACCES`, …).
    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public var code: Int32
        public init(code: Int32) { self.code = code }
        /// strerror's text, as the C tools print it.
        public var description: String { String(cString: strerror(code)) }
    }

    /// The bytes of the file at `path`; a directory fails with `EISDIR`.
    public static func read(path: String) throws(Failure) -> [UInt8] {
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw Failure(code: errno) }
        defer { close(fd) }
        return try read(descriptor: fd)
    }

    /// Everything left on standard input.
    public static func readStandardInput() throws(Failure) -> [UInt8] {
        try read(descriptor: STDIN_FILENO)
    }

    static func read(descriptor fd: Int32) throws(Failure) -> [UInt8] {
        var info = stat()
        let hint = fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG ? Int(info.st_size) : 0
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hint + 1)
        let chunk = 1 << 16
        while true {
            let start = bytes.count
            bytes.append(contentsOf: repeatElement(0, count: chunk))
            let (n, code) = bytes.withUnsafeMutableBufferPointer { buffer in
                let n = Glibc.read(fd, buffer.baseAddress! + start, chunk)
                return (n, n < 0 ? errno : 0)
            }
            if n < 0 {
                bytes.removeSubrange(start...)
                if code == EINTR { continue }
                throw Failure(code: code)
            }
            bytes.removeSubrange((start + n)...)
            if n == 0 { return bytes }
        }
    }
}
