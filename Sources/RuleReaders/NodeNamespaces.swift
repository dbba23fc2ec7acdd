#if canImport(Glibc)
import Glibc
#endif
import NetfilterModel

/// A process as `/proc` shows it: enough to tell which one holds a pod's proxy.
public struct NodeProcess: Sendable, Hashable {
    public var pid: Int32
    /// `/proc/PID/comm`: the executable's name, cut to 15 bytes by the kernel.
    public var command: String
    /// Real UID and GID (`/proc/PID/status`).
    public var uid: UInt32?
    public var gid: UInt32?
    public init(pid: Int32, command: String, uid: UInt32?, gid: UInt32?) {
        self.pid = pid
        self.command = command
        self.uid = uid
        self.gid = gid
    }
}

/// One network namespace of the node: its inode, a path that opens it, the processes in it, and the
/// `/run/netns` names bound to it.
public struct NodeNamespace: Sendable, Hashable {
    public var inode: UInt64
    /// `/proc/PID/ns/net` of its lowest process, or `/run/netns/NAME` when no process holds it.
    public var path: String
    /// Sorted by pid.
    public var processes: [NodeProcess]
    public var boundNames: [String]
    public init(inode: UInt64, path: String, processes: [NodeProcess], boundNames: [String]) {
        self.inode = inode
        self.path = path
        self.processes = processes
        self.boundNames = boundNames
    }

    /// Whether the namespace found at discovery may still be there: false only when every way to it is gone (its
    /// processes ended, its `/run/netns` name removed or unmounted), so a pod deleted since is not reported as a
    /// namespace that could not be read. A path that cannot be checked (EACCES) counts as there.
    public var stillExists: Bool {
        ([path] + processes.map { "/proc/\($0.pid)/ns/net" } + boundNames.map { "/run/netns/\($0)" }).contains { p in
            var info = stat()
            guard stat(p, &info) == 0 else { return errno != ENOENT && errno != ESRCH }
            return UInt64(info.st_ino) == inode
        }
    }
}

/// Every network namespace on the node but the host's, found the way `lsns -t net` and `ip netns` do.
public struct NodeNamespaceInventory: Sendable, Hashable {
    public var namespaces: [NodeNamespace]
    /// The host's namespace (PID 1's, and this process's when it differs), left out of `namespaces`.
    public var hostInodes: [UInt64]
    /// Entries that could not be looked at (a process's namespace link refused, a bound file gone): path, reason.
    public var unreadable: [(path: String, reason: String)]

    public static func == (a: Self, b: Self) -> Bool {
        a.namespaces == b.namespaces && a.hostInodes == b.hostInodes && a.unreadable.map(\.path) == b.unreadable.map(\.path)
    }
    public func hash(into h: inout Hasher) { h.combine(namespaces); h.combine(hostInodes) }
}

/// Walks `/proc/*/ns/net` (deduplicated by inode) and `/run/netns/*`. Reads links, `comm` and `status` only: no
/// namespace is entered, nothing is opened for writing. Seeing other users' namespace links needs root (or
/// CAP_SYS_PTRACE); a process that ends during the walk is simply not listed.
public enum NodeNamespaces {
    public static func discover(proc: String = "/proc", boundDirectory: String = "/run/netns") -> NodeNamespaceInventory {
        var host: [UInt64] = []
        for path in ["\(proc)/1/ns/net", "\(proc)/self/ns/net"] {
            if let inode = NetworkNamespace.inode(of: path), !host.contains(inode) { host.append(inode) }
        }
        var byInode: [UInt64: NodeNamespace] = [:]
        var unreadable: [(path: String, reason: String)] = []
        // PID 1 is the host by definition, even where its link is not readable (a sandboxed init).
        for pid in processIDs(proc: proc) where pid != 1 {
            let link = "\(proc)/\(pid)/ns/net"
            var st = stat()
            guard stat(link, &st) == 0 else {
                let code = errno
                // ENOENT: the process ended (or is a kernel thread without one); nothing to report.
                if code != ENOENT && code != ESRCH { unreadable.append((link, String(cString: strerror(code)))) }
                continue
            }
            let inode = UInt64(st.st_ino)
            if host.contains(inode) { continue }
            let process = NodeProcess(pid: pid, command: command(pid: pid, proc: proc) ?? "", uid: ids(pid: pid, proc: proc, field: "Uid:"),
                                      gid: ids(pid: pid, proc: proc, field: "Gid:"))
            if byInode[inode] == nil {
                byInode[inode] = NodeNamespace(inode: inode, path: link, processes: [process], boundNames: [])
            } else {
                byInode[inode]!.processes.append(process)
            }
        }
        for name in directoryEntries(boundDirectory).sorted() {
            let path = boundDirectory + "/" + name
            guard let inode = NetworkNamespace.inode(of: path) else {
                unreadable.append((path, String(cString: strerror(errno))))
                continue
            }
            if host.contains(inode) { continue }
            if byInode[inode] == nil {
                byInode[inode] = NodeNamespace(inode: inode, path: path, processes: [], boundNames: [name])
            } else {
                byInode[inode]!.boundNames.append(name)
            }
        }
        let namespaces = byInode.values.map { ns -> NodeNamespace in
            var ns = ns
            ns.processes.sort { $0.pid < $1.pid }
            if let first = ns.processes.first { ns.path = "\(proc)/\(first.pid)/ns/net" }
            return ns
        }.sorted { $0.inode < $1.inode }
        return NodeNamespaceInventory(namespaces: namespaces, hostInodes: host, unreadable: unreadable)
    }

    /// A process's environment (`/proc/PID/environ`, NUL-separated); nil when it cannot be read (gone, or not ours
    /// to read without CAP_SYS_PTRACE).
    public static func environment(pid: Int32, proc: String = "/proc") -> [String: String]? {
        guard let text = readSmallFile("\(proc)/\(pid)/environ", limit: 1 << 20) else { return nil }
        var out: [String: String] = [:]
        for entry in text.split(separator: "\0") {
            guard let eq = entry.firstIndex(of: "=") else { continue }
            out[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
        }
        return out
    }

    /// A file as the process sees it (`/proc/PID/root` + `path`: its own mount namespace and root); nil when absent
    /// or unreadable.
    public static func file(pid: Int32, path: String, limit: Int = 1 << 20, proc: String = "/proc") -> String? {
        readSmallFile("\(proc)/\(pid)/root" + (path.hasPrefix("/") ? path : "/" + path), limit: limit)
    }

    /// The namespace's interface addresses over rtnetlink (RTM_GETADDR on `NetworkNamespace`'s thread): the pod's IPs.
    public static func addresses(namespacePath: String?) throws(RuleReaderError) -> [InterfaceAddress] {
        try NetworkNamespace.performing(at: namespacePath) { () throws(RuleReaderError) in try NetlinkRouting.addresses() }
    }

    public static func process(pid: Int32, proc: String = "/proc") -> NodeProcess? {
        guard let command = command(pid: pid, proc: proc) else { return nil }
        return NodeProcess(pid: pid, command: command, uid: ids(pid: pid, proc: proc, field: "Uid:"), gid: ids(pid: pid, proc: proc, field: "Gid:"))
    }

    static func command(pid: Int32, proc: String) -> String? {
        readSmallFile("\(proc)/\(pid)/comm", limit: 256).map { $0.hasSuffix("\n") ? String($0.dropLast()) : $0 }
    }

    /// The real ID of a `Uid:`/`Gid:` line (`real effective saved filesystem`).
    static func ids(pid: Int32, proc: String, field: String) -> UInt32? {
        guard let status = readSmallFile("\(proc)/\(pid)/status", limit: 1 << 16) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(field) {
            return line.dropFirst(field.count).split(whereSeparator: { $0 == "\t" || $0 == " " }).first.flatMap { UInt32($0) }
        }
        return nil
    }

    static func processIDs(proc: String) -> [Int32] {
        directoryEntries(proc).compactMap { Int32($0) }.sorted()
    }

    static func directoryEntries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var out: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }
}
