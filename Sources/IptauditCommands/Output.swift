import Glibc
import NetfilterModel
import Reporters

/// Standard output and error through write(2): nothing buffered to lose at exit, and one place that decides
/// what a failed write means: a closed pipe ends quietly as if SIGPIPE had killed us (status 141, as
/// iptables-save ends), anything else (a full disk, a closed descriptor) is one line on stderr if it can still
/// be written, and exit 2.
enum Output {
    /// What a shell reports for a process killed by SIGPIPE; used when SIGPIPE is ignored and write(2) says EPIPE.
    static let closedPipeStatus: Int32 = 128 + SIGPIPE

    static func write(_ text: String, to fd: Int32) {
        var text = text
        text.withUTF8 { write($0, to: fd) }
    }

    /// Text already encoded (a `TextBuffer`), written without first becoming a String.
    static func write(_ text: borrowing TextBuffer, to fd: Int32) {
        text.withBytes { write($0, to: fd) }
    }

    private static func write(_ bytes: UnsafeBufferPointer<UInt8>, to fd: Int32) {
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

    private static func fail(_ fd: Int32, _ code: Int32) -> Never {
        if code == EPIPE { _exit(closedPipeStatus) }
        if fd != STDERR_FILENO {
            let line = "iptaudit: cannot write to standard output: \(String(cString: strerror(code)))\n"
            _ = line.utf8CString.withUnsafeBufferPointer { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
        }
        _exit(2)
    }

    /// Called first thing in `main`. A closed stdin, stdout or stderr is held by /dev/null opened the other way
    /// round, so a file iptaudit opens can never become descriptor 1 or 2 (and receive the report or an error),
    /// while a write to a closed stdout still fails (EBADF) and ends with exit 2. Nothing writes through stdio:
    /// swift-argument-parser's help and errors are printed here too (`IptauditCommand.exit(reporting:)`).
    static func guardStandardStreams() {
        for (fd, flags) in [(STDIN_FILENO, O_WRONLY), (STDOUT_FILENO, O_RDONLY), (STDERR_FILENO, O_RDONLY)]
        where fcntl(fd, F_GETFD) < 0 && errno == EBADF {
            let opened = open("/dev/null", flags)
            if opened >= 0 && opened != fd { dup2(opened, fd); close(opened) }
        }
    }
}

/// Every message to stderr goes through here: control and bidi characters escaped, each line bounded
/// (`MessageText`), whatever a caller interpolated.
func printError(_ message: String) {
    let text = message.hasSuffix("\n") ? String(message.dropLast()) : message
    Output.write(MessageText.line(text, keepingNewlines: true) + "\n", to: STDERR_FILENO)
}

/// `-o yaml`: the JSON document as YAML (`ReportYAML`); a failure to write it is exit 2 with one line.
func yamlDocument(json: String) throws -> String {
    do {
        return try ReportYAML.fromJSON(json)
    } catch {
        printError("iptaudit: -o yaml: \(error.description)")
        throw ExitCodes.unreadable
    }
}

func emitYAML(json: String) throws {
    emit(try yamlDocument(json: json))
}

/// Writes to stdout without buffering surprises when output is piped.
func emit(_ text: String) {
    Output.write(text, to: STDOUT_FILENO)
}

/// `emit` for text rendered into bytes (save syntax of a node's table: no String copy and validation pass).
func emit(_ text: borrowing TextBuffer) {
    Output.write(text, to: STDOUT_FILENO)
}

/// Leaves a value to the process's exit instead of freeing it now: `show` and `verify` end right after their
/// report, and freeing a node's model rule by rule was ~7% of a large `show` (14 M of 209 M instructions on 11,000
/// rules). Only for values built once per run.
func keepUntilExit<T>(_ value: T) {
    _ = Unmanaged.passRetained(KeptUntilExit(value))
}

private final class KeptUntilExit<T> {
    let value: T
    init(_ value: T) { self.value = value }
}
