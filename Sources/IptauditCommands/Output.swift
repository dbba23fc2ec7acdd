import Glibc

/// Standard output and error through write(2): nothing buffered to lose at exit, and one place that decides
/// what a failed write means (a closed pipe, a full disk): one line on stderr if it can still be written, exit 2.
enum Output {
    static func write(_ text: String, to fd: Int32) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n > 0 {
                    offset += n
                    continue
                }
                let code = n < 0 ? errno : EIO
                if code == EINTR { continue }
                fail(fd, code)
            }
        }
    }

    private static func fail(_ fd: Int32, _ code: Int32) -> Never {
        if fd != STDERR_FILENO {
            let line = "iptaudit: cannot write to standard output: \(String(cString: strerror(code)))\n"
            _ = line.utf8CString.withUnsafeBufferPointer { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
        }
        exit(2)
    }

    /// Colour only on a terminal, and never when `NO_COLOR` is set (to anything).
    static var colorOnStandardOutput: Bool { isatty(STDOUT_FILENO) == 1 && getenv("NO_COLOR") == nil }
}

func printError(_ message: String) {
    Output.write(message.hasSuffix("\n") ? message : message + "\n", to: STDERR_FILENO)
}

/// Writes to stdout without buffering surprises when output is piped.
func emit(_ text: String) {
    Output.write(text, to: STDOUT_FILENO)
}
