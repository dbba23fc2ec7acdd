import Glibc
import NetfilterModel

/// Whole-file reads through open(2)/read(2): regular files, pipes (`--input <(iptables-save)`,
/// `--pod <(kubectl get pod -o yaml)`), named FIFOs, /proc files and standard input alike, each bounded.
///
/// A regular file larger than the limit is refused from its size, before any byte is read; a pipe is read only
/// up to one byte past the limit. A FIFO is opened without blocking (open(2) on a FIFO waits for a writer) and
/// then waited for with poll(2): no data and no end of file for `InputLimits.inputWaitSeconds` is an error,
/// so a FIFO nobody writes cannot hang the tool. Devices and sockets are refused: they are not files of rules.
public enum FileContents {
    /// Why a read failed: the errno of the call that failed (`ENOENT`, `EISDIR`, `EACCES`, …), or a limit.
    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public var code: Int32
        /// Set when a limit or the file's type refused the input rather than the system.
        public var reason: String?
        public init(code: Int32, reason: String? = nil) {
            self.code = code
            self.reason = reason
        }
        /// strerror's text, as the C tools print it, or the limit that refused the input.
        public var description: String { reason ?? String(cString: strerror(code)) }
    }

    /// The bytes of the file at `path`, at most `limit` of them (`variable` names the limit's override);
    /// a directory fails with `EISDIR`.
    public static func read(path: String, limit: Int = InputLimits.current.inputBytes,
                            variable: String = InputLimits.Variable.inputBytes) throws(Failure) -> [UInt8] {
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw Failure(code: errno) }
        defer { close(fd) }
        // Blocking again for the reads; a FIFO is waited for with poll(2) first.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return try read(descriptor: fd, limit: limit, variable: variable)
    }

    /// Everything left on standard input, at most `limit` bytes.
    public static func readStandardInput(limit: Int = InputLimits.current.inputBytes,
                                         variable: String = InputLimits.Variable.inputBytes) throws(Failure) -> [UInt8] {
        try read(descriptor: STDIN_FILENO, limit: limit, variable: variable)
    }

    static func read(descriptor fd: Int32, limit: Int, variable: String) throws(Failure) -> [UInt8] {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Failure(code: errno) }
        let type = info.st_mode & S_IFMT
        switch type {
        case S_IFREG:
            if Int(info.st_size) > limit {
                throw Failure(code: EFBIG, reason: InputLimits.exceeded("is \(info.st_size) bytes", limit: limit, variable: variable))
            }
        case S_IFCHR where fd == STDIN_FILENO && isatty(fd) == 1:
            break  // a terminal on standard input is typed at
        case S_IFCHR, S_IFBLK:
            throw Failure(code: ENODEV, reason: "is a device, not a file (give a file, a pipe or - for standard input)")
        case S_IFSOCK:
            throw Failure(code: ENODEV, reason: "is a socket, not a file (give a file, a pipe or - for standard input)")
        default:
            break
        }
        let wait = type == S_IFIFO ? InputLimits.current.inputWaitSeconds : nil
        let hint = type == S_IFREG ? Int(info.st_size) : 0
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hint + 1)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            if let wait { try waitForData(fd, seconds: wait) }
            let (n, code) = buffer.withUnsafeMutableBytes { raw in
                let n = Glibc.read(fd, raw.baseAddress!, raw.count)
                return (n, n < 0 ? errno : 0)
            }
            if n < 0 {
                if code == EINTR || code == EAGAIN { continue }
                throw Failure(code: code)
            }
            if n == 0 { return bytes }
            bytes.append(contentsOf: buffer[..<n])
            if bytes.count > limit {
                throw Failure(code: EFBIG, reason: InputLimits.exceeded("gave more than \(limit) bytes", limit: limit, variable: variable))
            }
        }
    }

    /// Waits until the pipe or FIFO has data or its writer is gone; a FIFO nobody opens for writing never gets
    /// either, so the wait is bounded.
    private static func waitForData(_ fd: Int32, seconds: Int) throws(Failure) {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let n = poll(&entry, 1, Int32(clamping: seconds * 1000))
            if n > 0 { return }
            if n < 0, errno == EINTR { continue }
            if n < 0 { throw Failure(code: errno) }
            throw Failure(code: ETIMEDOUT, reason: "is a pipe or FIFO that gave no data and no end of file for \(seconds) s "
                + "(nothing writing to it?); set \(InputLimits.Variable.inputWait) higher to wait longer")
        }
    }
}
