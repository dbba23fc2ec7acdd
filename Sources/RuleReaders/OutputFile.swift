import Glibc

/// Writes a whole file through open(2)/write(2)/rename(2) without ever damaging what was at the path: only an
/// absent path or a regular file is replaced, and only by a complete, fsynced file. A device node, FIFO, socket,
/// directory or symlink there is refused and left as it was (`capture -o /dev/full` once replaced the device).
public enum OutputFile {
    /// Why a write was refused or failed, to follow "cannot write PATH: ".
    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Replaces `path` with `bytes`, mode `mode` whatever the umask (bundles may hold a pod manifest: 0600).
    ///
    /// The bytes go to a new file in the same directory (`O_CREAT|O_EXCL|O_NOFOLLOW`, so nothing already there is
    /// opened), are fsynced, and the file is renamed over `path` after a second lstat shows it is still absent or
    /// regular; rename(2) replaces a name and never follows a symlink. On any failure the temporary file is removed.
    public static func replace(_ path: String, with bytes: [UInt8], mode: mode_t = 0o600) throws(Failure) {
        try checkReplaceable(path)
        let directory = directoryName(path)
        let (fd, temporary) = try createTemporary(in: directory, for: path, mode: mode)
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        do {
            defer { if fd >= 0 { close(fd) } }
            // open(2)'s mode is narrowed by the umask; the file must be exactly `mode`, no wider, no narrower.
            guard fchmod(fd, mode) == 0 else { throw failure("cannot set the mode of \(temporary)", errno) }
            try writeAll(fd, bytes)
            guard fsync(fd) == 0 else { throw failure(nil, errno) }
        }
        try checkReplaceable(path)
        guard rename(temporary, path) == 0 else { throw failure("cannot rename \(temporary) over it", errno) }
        renamed = true
        // The rename itself is durable once the directory is: best effort, the data is already safe.
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 { _ = fsync(dirFD); close(dirFD) }
    }

    /// Refuses anything at `path` that is not a regular file, without following a symlink; `capture` asks before
    /// it reads anything, so a wrong path fails at once.
    public static func checkReplaceable(_ path: String) throws(Failure) {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            let code = errno
            if code == ENOENT { return }
            throw failure("cannot check what is there", code)
        }
        let kind = info.st_mode & S_IFMT
        guard kind != S_IFREG else { return }
        throw Failure(description: "it is \(describe(kind)), not a regular file; iptaudit replaces only a regular file and left it "
                      + "untouched (give a new file name, or - for standard output)")
    }

    static func describe(_ kind: mode_t) -> String {
        switch kind {
        case S_IFLNK: return "a symbolic link"
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file (mode \(String(kind, radix: 8)))"
        }
    }

    /// `dir/.name.iptaudit-XXXXXXXXXXXXXXXX`, created exclusively; a name already taken is retried with another.
    static func createTemporary(in directory: String, for path: String, mode: mode_t) throws(Failure) -> (Int32, String) {
        let base = path.split(separator: "/").last.map(String.init) ?? "output"
        for _ in 0..<16 {
            let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
            let temporary = (path.contains("/") ? directory + "/" : "") + ".\(base).iptaudit-\(suffix)"
            var fd: Int32
            repeat {
                fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            } while fd < 0 && errno == EINTR
            if fd >= 0 { return (fd, temporary) }
            let code = errno
            if code != EEXIST { throw failure("cannot create a temporary file in \(directory)", code) }
        }
        throw failure("cannot create a temporary file in \(directory)", EEXIST)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            let (n, code) = bytes.withUnsafeBufferPointer { buffer in
                let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                return (n, n < 0 ? errno : 0)
            }
            if n > 0 { offset += n; continue }
            if n < 0 && code == EINTR { continue }
            throw failure(nil, n < 0 ? code : EIO)
        }
    }

    /// The directory part of `path` (`.` for a bare name), as dirname(1) gives it.
    static func directoryName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let directory = String(path[..<slash])
        return directory.isEmpty ? "/" : directory
    }

    /// strerror's text, after what was being done when it is not the write itself.
    static func failure(_ what: String?, _ code: Int32) -> Failure {
        Failure(description: (what.map { $0 + ": " } ?? "") + String(cString: strerror(code)))
    }
}
