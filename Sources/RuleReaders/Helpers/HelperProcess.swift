#if canImport(Glibc)
import Glibc
import NetfilterModel
#endif
private import CSpawn

/// What a helper program printed, and how it ended.
public struct HelperOutput: Sendable {
    /// The exit status, or 128 + the signal number when a signal ended it (as a shell reports it).
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// The one way iptaudit starts another program (`iptables-nft-save`, `dot`): it cannot hang, leak or be hijacked.
///
/// - The program is looked up only in fixed system directories, never through `$PATH` (iptaudit runs as root;
///   a writable directory early in `$PATH` would let anyone feed it invented rules), and must be owned by root
///   and writable by nobody else.
/// - The child gets a clean environment (no `XTABLES_LIBDIR`, `LD_PRELOAD`, …), default signal handling, an
///   empty signal mask, and no descriptor but its three standard ones (`posix_spawn` with a closefrom action).
/// - Exit is seen through a pidfd and `waitpid`, never through a run loop; stdout and stderr are drained and
///   stdin written in one `poll` loop, so no pipe can fill up and block either side.
/// - Every run has a deadline: past it the child is killed and reaped, and the caller gets `.helper` saying so.
///
/// Spawning happens on the calling thread, so a program started inside `NetworkNamespace.perform` runs in that
/// namespace: the child inherits the thread's namespaces, and no `nsenter` is needed.
public enum HelperProcess {
    /// Where helpers may come from, in order.
    public static let searchDirectories = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    /// The child's whole environment.
    static let environment = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]
    /// Bound on what a helper may print; far above any real ruleset dump.
    static let outputLimit = 1 << 30

    /// The absolute path of a helper in the system directories, or nil when it is not installed there.
    ///
    /// Throws when the file found could have been replaced by someone other than root.
    public static func locate(_ name: String) throws(RuleReaderError) -> String? {
        guard !name.contains("/") else { return nil }
        for dir in searchDirectories {
            let path = dir + "/" + name
            var st = stat()
            guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_mode & 0o111 != 0 else { continue }
            if st.st_uid != 0 || st.st_mode & 0o022 != 0 {
                throw .helper(command: name, reason: "\(path) is not owned by root or is writable by others; refusing to run it as a helper")
            }
            return path
        }
        return nil
    }

    /// Runs `name` (found by `locate`) with `arguments`, feeding `input` to its stdin, and collects its output.
    public static func run(_ name: String, _ arguments: [String], input: [UInt8]? = nil,
                           timeout: Double? = nil) throws(RuleReaderError) -> HelperOutput {
        guard let path = try locate(name) else {
            throw .helper(command: name, reason: "not installed (looked in \(searchDirectories.joined(separator: ", ")))")
        }
        let command = ([name] + arguments).joined(separator: " ")
        // `IPTAUDIT_HELPER_TIMEOUT` (an input limit: the command refuses a value that is not whole seconds).
        let limit = timeout ?? Double(InputLimits.current.helperSeconds)

        let stdoutPipe = try pipe(command), stderrPipe = try pipe(command)
        let stdinPipe = input == nil ? nil : try pipe(command)
        var parentEnds = [stdoutPipe.read, stderrPipe.read] + (stdinPipe.map { [$0.write] } ?? [])
        var childEnds = [stdoutPipe.write, stderrPipe.write] + (stdinPipe.map { [$0.read] } ?? [])
        defer {
            for fd in parentEnds + childEnds where fd >= 0 { close(fd) }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdinPipe {
            posix_spawn_file_actions_adddup2(&actions, stdinPipe.read, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe.write, 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe.write, 2)
        cspawn_addclosefrom(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t(), allSignals = sigset_t()
        sigemptyset(&noSignals)
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var pid: pid_t = 0
        let argv = [path] + arguments
        let spawned = withCStrings(argv) { argvPointers in
            withCStrings(environment) { envPointers in
                posix_spawn(&pid, path, &actions, &attributes, argvPointers, envPointers)
            }
        }
        guard spawned == 0 else {
            throw .helper(command: command, reason: "cannot start \(path): \(String(cString: strerror(spawned)))")
        }
        for fd in childEnds { close(fd) }
        childEnds = []

        var session = Session(pid: pid, stdout: stdoutPipe.read, stderr: stderrPipe.read,
                              stdin: stdinPipe?.write, input: input ?? [])
        parentEnds = []  // the session owns and closes them
        return try session.finish(command: command, path: path, timeout: limit)
    }

    private static func pipe(_ command: String) throws(RuleReaderError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard cspawn_pipe_cloexec(&fds) == 0 else {
            throw .helper(command: command, reason: "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        // A caller with a closed stdin/stdout could get descriptor 0-2 back; keep pipes above them so the
        // child's dup2 onto 0-2 never meets its own source.
        for i in 0..<2 where fds[i] < 3 {
            let moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)
            close(fds[i])
            fds[i] = moved
        }
        return (fds[0], fds[1])
    }
}

/// One running child: its pipes, its pidfd and what has been collected so far.
private struct Session {
    let pid: pid_t
    var stdout: Int32
    var stderr: Int32
    var stdin: Int32?
    var input: [UInt8]
    var written = 0
    var out: [UInt8] = []
    var err: [UInt8] = []

    init(pid: pid_t, stdout: Int32, stderr: Int32, stdin: Int32?, input: [UInt8]) {
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.stdin = stdin
        self.input = input
    }

    /// Drains the pipes until the child has exited and both are closed, or the deadline passes.
    mutating func finish(command: String, path: String, timeout: Double) throws(RuleReaderError) -> HelperOutput {
        let pidfd = cspawn_pidfd_open(pid)
        defer {
            if pidfd >= 0 { close(pidfd) }
            for fd in [stdout, stderr, stdin ?? -1] where fd >= 0 { close(fd) }
        }
        if let fd = stdin {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if input.isEmpty { close(fd); stdin = nil }
        }
        // Writing to a child that already exited raises SIGPIPE; block it on this thread for the loop so the
        // write fails with EPIPE instead, and discard the pending signal afterwards.
        var pipeSignal = sigset_t(), previousMask = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &previousMask)
        defer {
            var none = timespec()
            while sigtimedwait(&pipeSignal, nil, &none) == SIGPIPE {}
            pthread_sigmask(SIG_SETMASK, &previousMask, nil)
        }

        let deadline = monotonicNow() + timeout
        var exitStatus: Int32?
        while stdout >= 0 || stderr >= 0 || exitStatus == nil {
            if exitStatus == nil, let status = reap(blocking: false) { exitStatus = status }
            if exitStatus != nil && stdout < 0 && stderr < 0 { break }
            let remaining = deadline - monotonicNow()
            if remaining <= 0 {
                kill(pid, SIGKILL)
                if exitStatus == nil { _ = reap(blocking: true) }
                throw .helper(command: command, reason: "did not finish within \(formatSeconds(timeout)) s and was stopped "
                    + "(set \(InputLimits.Variable.helperSeconds) to allow longer)")
            }
            var fds: [pollfd] = []
            if stdout >= 0 { fds.append(pollfd(fd: stdout, events: Int16(POLLIN), revents: 0)) }
            if stderr >= 0 { fds.append(pollfd(fd: stderr, events: Int16(POLLIN), revents: 0)) }
            if let fd = stdin { fds.append(pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)) }
            // Without a pidfd (kernels before 5.3) exit is noticed by polling waitpid every 10 ms.
            let waitForExit = exitStatus == nil
            if waitForExit && pidfd >= 0 { fds.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)) }
            var sliceMs = Int32(min(remaining * 1000, 1000).rounded(.up))
            if waitForExit && pidfd < 0 { sliceMs = min(sliceMs, 10) }
            let ready = poll(&fds, nfds_t(fds.count), max(sliceMs, 1))
            if ready < 0 {
                if errno == EINTR { continue }
                throw .helper(command: command, reason: "poll: \(String(cString: strerror(errno)))")
            }
            for p in fds where p.revents != 0 {
                if p.fd == stdout { try drain(&stdout, into: &out, command: command) }
                else if p.fd == stderr { try drain(&stderr, into: &err, command: command) }
                else if p.fd == stdin { feed() }
            }
        }
        return HelperOutput(status: exitStatus ?? -1, stdout: String(decoding: out, as: UTF8.self),
                            stderr: String(decoding: err, as: UTF8.self))
    }

    /// The child's status once it has exited (exit code, or 128 + signal).
    private func reap(blocking: Bool) -> Int32? {
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, blocking ? 0 : WNOHANG)
            if r == pid { break }
            if r == 0 { return nil }
            if errno == EINTR { continue }
            return -1
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    private func drain(_ fd: inout Int32, into buffer: inout [UInt8], command: String) throws(RuleReaderError) {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n > 0 {
            buffer.append(contentsOf: chunk[0..<n])
            if buffer.count > HelperProcess.outputLimit {
                kill(pid, SIGKILL)
                _ = reap(blocking: true)
                throw .helper(command: command, reason: "printed more than \(HelperProcess.outputLimit >> 20) MiB; stopped")
            }
        } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
            close(fd)
            fd = -1
        }
    }

    private mutating func feed() {
        guard let fd = stdin else { return }
        let n = input[written...].withUnsafeBytes { write(fd, $0.baseAddress, min($0.count, 65536)) }
        if n > 0 { written += n }
        if written >= input.count || (n < 0 && errno != EAGAIN && errno != EINTR) {
            close(fd)
            stdin = nil
        }
    }
}

private func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

private func formatSeconds(_ s: Double) -> String {
    s == s.rounded() ? String(Int(s)) : String(s)
}

/// Calls `body` with a NULL-terminated C array of `strings`, valid for the call.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) }
    defer { pointers.forEach { free($0) } }
    return body(pointers + [nil])
}
