import Foundation
import Testing
import TestSupport

/// `capture -w` never damages what is at the path, writes bundles 0600, and reports every write error; a failed
/// write to stdout ends with one line and exit 2, a closed pipe quietly (issue 10).
@Suite("output files and standard streams")
struct OutputSafetyTests {
    /// A small corpus dump for `capture --input`.
    static let dump = Fixtures.url("istio/master/live-save/sidecar-iptables/dns-uid-gid.ipv4.save").path

    /// A fresh directory, removed afterwards by the caller.
    static func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "iptaudit-out-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        return dir
    }

    /// `sh -c script` with `$IPTAUDIT` set to the binary, so redirections and ulimits apply to iptaudit alone.
    static func shell(_ script: String) throws -> CommandResult {
        try runCommand(["sh", "-c", script], environment: ["IPTAUDIT": Binary.path])
    }

    static func lines(_ text: String) -> [Substring] { text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() }

    static func lstatInfo(_ path: String) -> stat? {
        var info = stat()
        return lstat(path, &info) == 0 ? info : nil
    }

    @Test func theDumpIsThere() {
        #expect(FileManager.default.fileExists(atPath: Self.dump))
    }

    /// A FIFO, a symlink (to a file whose bytes must not change) and a directory: each refused with exit 2 and one
    /// line naming the path, and still the same inode of the same type afterwards.
    @Test(arguments: ["fifo", "symlink", "directory"])
    func aPathThatIsNotARegularFileIsRefusedAndLeftUntouched(_ kind: String) throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/target"
        let victim = dir + "/victim"
        try "keep me\n".write(toFile: victim, atomically: false, encoding: .utf8)
        switch kind {
        case "fifo": #expect(mkfifo(path, 0o644) == 0)
        case "symlink": try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: victim)
        default: try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        }
        let before = try #require(Self.lstatInfo(path))
        let r = try Binary.run(["capture", "--input", Self.dump, "-w", path])
        #expect(r.status == 2)
        #expect(Self.lines(r.stderr).count == 1, "\(r.stderr)")
        #expect(r.stderr.contains(path) && r.stderr.contains("not a regular file"), "\(r.stderr)")
        let after = try #require(Self.lstatInfo(path))
        #expect(after.st_ino == before.st_ino && after.st_mode == before.st_mode)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me\n")
        // Nothing else was left in the directory (no temporary file).
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir)) == ["target", "victim"])
    }

    /// A character device (a copy of /dev/full's numbers, made in a scratch directory): refused, still a device.
    @Test(.enabled(if: geteuid() == 0, "mknod needs root"))
    func aDeviceNodeIsRefusedAndLeftUntouched() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/full"
        var full = stat()
        #expect(stat("/dev/full", &full) == 0)
        #expect(mknod(path, S_IFCHR | 0o666, full.st_rdev) == 0)
        let r = try Binary.run(["capture", "--input", Self.dump, "-w", path])
        #expect(r.status == 2)
        #expect(Self.lines(r.stderr).count == 1 && r.stderr.contains("character device"), "\(r.stderr)")
        let after = try #require(Self.lstatInfo(path))
        #expect(after.st_mode & S_IFMT == S_IFCHR && after.st_rdev == full.st_rdev)
    }

    /// New bundles are 0600 under any umask; an existing file (0600 or wider) is replaced by a 0600 one.
    @Test(arguments: ["022", "000", "077"])
    func bundlesAreWrittenMode0600(_ umask: String) throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fresh = dir + "/new.json", existing600 = dir + "/old600.json", existing644 = dir + "/old644.json"
        for (path, mode) in [(existing600, 0o600), (existing644, 0o644)] {
            try "old".write(toFile: path, atomically: false, encoding: .utf8)
            #expect(chmod(path, mode_t(mode)) == 0)
        }
        for path in [fresh, existing600, existing644] {
            let r = try Self.shell("umask \(umask); exec \"$IPTAUDIT\" capture --input '\(Self.dump)' -w '\(path)'")
            #expect(r.status == 0, "\(r.stderr)")
            let info = try #require(Self.lstatInfo(path))
            #expect(info.st_mode & S_IFMT == S_IFREG)
            #expect(info.st_mode & 0o7777 == 0o600, "\(path) under umask \(umask): \(String(info.st_mode & 0o7777, radix: 8))")
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(text.contains("\"schemaVersion\""))
        }
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir)) == ["new.json", "old600.json", "old644.json"])
    }

    /// A write that fails part-way (EFBIG from a 1-block file size limit, SIGXFSZ ignored) is exit 2 with one line
    /// saying why; the path is not created and no temporary file is left behind.
    @Test func aFailedWriteIsReportedAndLeavesNothing() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/bundle.json"
        let r = try Self.shell("trap '' XFSZ; ulimit -f 1; exec \"$IPTAUDIT\" capture --input '\(Self.dump)' -w '\(path)'")
        #expect(r.status == 2)
        #expect(Self.lines(r.stderr).count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("cannot write \(path)") && r.stderr.contains(String(cString: strerror(EFBIG))), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    /// A full filesystem (a 4 KiB tmpfs in a private mount namespace): ENOSPC is exit 2 with one line, nothing left.
    @Test(.enabled(if: geteuid() == 0, "mounting a tmpfs needs root"))
    func aFullFilesystemIsReported() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The tmpfs is filled first, so even a small bundle cannot fit; `ls` shows what is left in it.
        let r = try Self.shell("exec unshare --mount sh -c 'mount -t tmpfs -o size=4k tmpfs \(dir) && "
                               + "(head -c 65536 /dev/zero > \(dir)/fill 2>/dev/null; true) && "
                               + "\"$IPTAUDIT\" capture --input \(Self.dump) -w \(dir)/bundle.json; s=$?; ls -A \(dir); exit $s'")
        #expect(r.status == 2)
        #expect(Self.lines(r.stderr).count == 1, "\(r.stderr)")
        #expect(r.stderr.contains(String(cString: strerror(ENOSPC))), "\(r.stderr)")
        #expect(r.stdout == "fill\n")
    }

    @Test func dashStillWritesTheBundleToStandardOutput() throws {
        let r = try Binary.run(["capture", "--input", Self.dump, "-w", "-"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(json?["kind"] as? String == "iptaudit-capture-bundle")
    }

    // MARK: - Standard output and error

    /// ENOSPC (/dev/full) and EBADF (a closed stdout): exit 2, exactly one line on stderr naming the cause.
    @Test(arguments: [("> /dev/full", ENOSPC), (">&-", EBADF)])
    func aFailedWriteToStandardOutputIsExitTwoWithOneLine(_ redirection: String, _ code: Int32) throws {
        // Something (an older iptaudit's `capture -o /dev/full`) may have replaced the device with a file.
        try #require(Self.lstatInfo("/dev/full").map { $0.st_mode & S_IFMT == S_IFCHR } == true, "/dev/full is not a device here")
        for args in ["expect", "show --input '\(Self.dump)' --format save", "capture --input '\(Self.dump)' -w -", "--help", "expect --help"] {
            let r = try Self.shell("exec \"$IPTAUDIT\" \(args) \(redirection)")
            #expect(r.status == 2, "\(args) \(redirection): \(r.status) \(r.stderr)")
            #expect(Self.lines(r.stderr).count == 1, "\(args) \(redirection): \(r.stderr)")
            #expect(r.stderr.hasPrefix("iptaudit: cannot write to standard output: \(String(cString: strerror(code)))"), "\(r.stderr)")
        }
    }

    /// A pipe whose reader is gone ends as iptables-save ends: killed by SIGPIPE (status 141 in a shell) with
    /// default SIGPIPE, and with SIGPIPE ignored the same status by exit; nothing on stderr either way.
    @Test(arguments: ["--default-signal=PIPE", "--ignore-signal=PIPE"])
    func aClosedPipeEndsQuietly(_ disposition: String) throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        close(fds[0])
        defer { close(fds[1]) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [disposition, Binary.path, "expect"]
        let err = Pipe()
        p.standardOutput = FileHandle(fileDescriptor: fds[1], closeOnDealloc: false)
        p.standardError = err
        try p.run()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(stderr.isEmpty, "\(String(decoding: stderr, as: UTF8.self))")
        if disposition == "--default-signal=PIPE" {
            #expect(p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGPIPE)
        } else {
            #expect(p.terminationReason == .exit && p.terminationStatus == 128 + SIGPIPE)
        }
    }
}
