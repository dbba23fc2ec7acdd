#if canImport(Glibc)
import Glibc
import NetfilterModel
#endif

/// Another network namespace (a pod's), entered by one dedicated thread so the rest of the process never moves.
///
/// A network namespace is a per-thread attribute on Linux: `setns(fd, CLONE_NEWNET)` on a fresh pthread puts that
/// thread (and anything it opens or spawns) in the namespace, while the caller and every other thread stay where
/// they are. Readers that work on "the current namespace" (libiptc, `/proc/thread-self/net`) therefore read the
/// pod's tables when run inside `perform`.
///
/// Netlink sockets (`NetlinkRouting`, `NftablesInventory`) belong to the namespace of the thread that opens them,
/// so they too are opened inside `perform`.
///
/// Helper programs (`HelperProcess`) started inside `perform` inherit the thread's namespace: no `nsenter`.
public struct NetworkNamespace: Sendable, Hashable, CustomStringConvertible {
    /// The namespace file: `/proc/PID/ns/net`, `/run/netns/NAME`, or any bind mount of one.
    public let path: String

    public init(path: String) { self.path = path }

    /// The namespace of a process (any process of a pod shares the pod's namespace).
    public init(pid: Int32) { self.path = "/proc/\(pid)/ns/net" }

    public var description: String { path }

    /// Runs `body` on a new thread that first joins this namespace; the calling thread never changes namespace.
    ///
    /// Errors opening or entering the namespace are `RuleReaderError.namespace`; errors of `body` pass through.
    public func perform<T: Sendable>(_ body: @Sendable () throws -> T) throws -> T {
        let fd = try openNamespace()
        defer { close(fd) }
        // A new thread starts without the caller's task-locals: the input limits in force go along.
        let limits = InputLimits.current
        return try withoutActuallyEscaping(body) { body in
            let work = NamespaceThread(fd: fd) { try InputLimits.$current.withValue(limits) { try body() } }
            try work.runToCompletion(path: path)
            guard let result = work.result else {
                throw RuleReaderError.namespace(path: path, reason: "the namespace thread ended without a result")
            }
            return try result.get()
        }
    }

    /// Runs `body` inside the namespace at `path` (on `perform`'s thread), or on the calling thread when `path` is nil.
    static func performing<T: Sendable>(at path: String?, _ body: @Sendable () throws(RuleReaderError) -> T) throws(RuleReaderError) -> T {
        guard let path else { return try body() }
        do {
            return try NetworkNamespace(path: path).perform { () throws -> T in try body() }
        } catch let error as RuleReaderError {
            throw error
        } catch {
            throw .namespace(path: path, reason: "\(error)")
        }
    }

    /// The inode of the calling thread's network namespace (what `readlink /proc/thread-self/ns/net` shows).
    public static func currentInode() -> UInt64? { inode(of: "/proc/thread-self/ns/net") }

    /// The inode of a namespace file; equal inodes mean the same namespace.
    public static func inode(of path: String) -> UInt64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt64(st.st_ino)
    }

    /// This namespace's inode, for reports.
    public var inode: UInt64? { Self.inode(of: path) }

    // MARK: opening

    /// Opens and checks the namespace file, turning each failure into a reason a user can act on.
    private func openNamespace() throws(RuleReaderError) -> Int32 {
        // O_NONBLOCK: open(2) of a FIFO would wait for a writer forever. A namespace file (nsfs, or a bind mount
        // of one under /run/netns) is a regular file; anything else is refused before any ioctl reaches it.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if fd < 0 {
            let err = errno
            throw .namespace(path: path, reason: openFailure(err))
        }
        var info = stat()
        if fstat(fd, &info) != 0 || info.st_mode & S_IFMT != S_IFREG {
            close(fd)
            throw .namespace(path: path, reason: "not a namespace file (expected /proc/PID/ns/net or /run/netns/NAME)")
        }
        // NS_GET_NSTYPE (Linux 4.11+) tells a network namespace from other namespace files and from plain files.
        let type = ioctl(fd, nsGetNSType)
        if type < 0 {
            let err = errno
            if err == ENOTTY || err == EINVAL {
                close(fd)
                throw .namespace(path: path, reason: "not a namespace file (expected /proc/PID/ns/net or /run/netns/NAME)")
            }
            // An old kernel without the ioctl: let setns decide.
        } else if type != cloneNewNet {
            close(fd)
            throw .namespace(path: path, reason: "not a network namespace (it is a \(Self.namespaceKind(type)) namespace)")
        }
        return fd
    }

    private func openFailure(_ err: Int32) -> String {
        switch err {
        case ENOENT:
            if let pid = processID, access("/proc/\(pid)", F_OK) != 0 { return "no such process \(pid)" }
            return "no such file (expected /proc/PID/ns/net or /run/netns/NAME)"
        case EACCES, EPERM:
            return "permission denied: another process's namespace can only be opened with root privileges "
                + "(CAP_SYS_ADMIN and ptrace access); run as root on the node"
        default:
            return String(cString: strerror(err))
        }
    }

    /// The PID in a `/proc/PID/ns/net` path.
    private var processID: Int32? {
        let parts = path.split(separator: "/")
        guard parts.count == 4, parts[0] == "proc", parts[2] == "ns", let pid = Int32(parts[1]) else { return nil }
        return pid
    }

    static func namespaceKind(_ type: Int32) -> String {
        switch type {
        case 0x0002_0000: "mount"
        case 0x0200_0000: "cgroup"
        case 0x0400_0000: "uts"
        case 0x0800_0000: "ipc"
        case 0x1000_0000: "user"
        case 0x2000_0000: "pid"
        case 0x0000_0080: "time"
        default: "type 0x" + String(type, radix: 16)
        }
    }
}

/// `CLONE_NEWNET` from `<sched.h>`, spelled out because Glibc's module does not always export it.
private let cloneNewNet: Int32 = 0x4000_0000
/// `NS_GET_NSTYPE` = `_IO(0xb7, 0x3)` from `<linux/nsfs.h>`.
private let nsGetNSType: UInt = 0xB703

@_silgen_name("setns")
private func c_setns(_ fd: Int32, _ nstype: Int32) -> Int32

/// The state shared between `perform` and its namespace thread; `pthread_join` orders every access.
private final class NamespaceThread<T>: @unchecked Sendable {
    let fd: Int32
    let body: () throws -> T
    var result: Result<T, any Error>?
    var setnsErrno: Int32 = 0

    init(fd: Int32, body: @escaping () throws -> T) {
        self.fd = fd
        self.body = body
    }

    /// Runs on the new thread.
    func main() {
        guard c_setns(fd, cloneNewNet) == 0 else {
            setnsErrno = errno
            return
        }
        result = Result { try body() }
    }

    func runToCompletion(path: String) throws(RuleReaderError) {
        let context = Unmanaged.passRetained(ThreadEntry(main))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            let entry = Unmanaged<ThreadEntry>.fromOpaque(raw).takeRetainedValue()
            entry.run()
            return nil
        }, context.toOpaque())
        guard rc == 0 else {
            context.release()
            throw .namespace(path: path, reason: "cannot start a thread: \(String(cString: strerror(rc)))")
        }
        pthread_join(thread, nil)
        if setnsErrno != 0 {
            let reason = switch setnsErrno {
            case EPERM: "setns was refused: entering a network namespace needs CAP_SYS_ADMIN; run as root on the node"
            case EINVAL: "not a network namespace"
            default: "setns: " + String(cString: strerror(setnsErrno))
            }
            throw .namespace(path: path, reason: reason)
        }
    }
}

/// A type-erased thread body, so the C entry point needs no generic context.
private final class ThreadEntry {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}
