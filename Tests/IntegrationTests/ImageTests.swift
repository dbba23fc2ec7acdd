import Foundation
import Testing
import TestSupport

/// The image (scripts/image.sh): its filesystem is scripts/image-rootfs.sh's — the release binary, the libraries it
/// dlopens, iptables-nft-save and their ldd closure — and it reads a pod namespace's rules to the verdict, exit status
/// and bytes the release binary gives on the host. First from that filesystem by chroot (what the image holds is
/// enough), then as the image itself under podman, where podman is installed.
@Suite(.serialized) struct ImageTests {
    static var enabled: Bool { TestNamespace.shouldRun && (ObserveConnectionTests.releaseBinary != nil || TestNamespace.required) }

    /// The rules a pod namespace is given, and what loads them: iptables-legacy (read through libiptc),
    /// iptables-nft (through iptables-nft-save) or `nft -f` (Istio's native nftables rules, through libnftables).
    static let setups: [(rules: String, backend: String)] = [
        ("examples/healthy.save", "legacy"), ("examples/broken.save", "legacy"), ("examples/healthy.save", "nft"),
        ("examples/broken.save", "nft"), ("Tests/Fixtures/istio/master/live-save/sidecar-nftables/basic-exclude-nic.nft", "native"),
    ]

    /// The verdict examples/pod.yaml gets from the example rules: proven for healthy.save, error findings for broken.save.
    static func expectedStatus(_ rules: String) -> Int32? {
        rules.hasSuffix("healthy.save") ? 0 : rules.hasSuffix("broken.save") ? 1 : nil
    }

    static func podNamespace(_ rules: String, _ backend: String) throws -> TestNamespace {
        let ns = try TestNamespace()
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        let text = try String(contentsOfFile: Fixtures.repositoryPath(rules), encoding: .utf8)
        try ns.mustRun(backend == "native" ? ["nft", "-f", "-"] : ["iptables-\(backend)-restore"], stdin: text)
        return ns
    }

    static func releaseBinary() throws -> String {
        let release = try #require(ObserveConnectionTests.releaseBinary,
                                   "IPTAUDIT_RELEASE_BIN is not set: scripts/test.sh builds the release binary and names it there")
        try #require(FileManager.default.isExecutableFile(atPath: release), "IPTAUDIT_RELEASE_BIN=\(release) is not an executable")
        return release
    }

    static let verify = ["verify", "--pod", "-"]
    static var manifest: String { get throws { try String(contentsOfFile: Fixtures.repositoryPath("examples/pod.yaml"), encoding: .utf8) } }

    @Test(.enabled(if: enabled, "needs root (namespaces, chroot) and IPTAUDIT_RELEASE_BIN, the release binary scripts/test.sh builds"),
          .timeLimit(.minutes(3)))
    func theImagesFilesVerifyAPodNamespaceAsTheReleaseBinaryDoes() throws {
        let release = try Self.releaseBinary()
        let root = NSTemporaryDirectory() + "iptaudit-image-rootfs-\(getpid())-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let made = try runCommand(["bash", Fixtures.repositoryPath("scripts/image-rootfs.sh"), release, root])
        try #require(made.status == 0, "\(made.stderr)")
        // Nothing but the binary, iptables-nft-save (and its two names) and shared objects, and the names of two users and
        // of protocols.
        let files = try FileManager.default.subpathsOfDirectory(atPath: root).filter { p in
            var dir: ObjCBool = false
            return FileManager.default.fileExists(atPath: "\(root)/\(p)", isDirectory: &dir) && !dir.boolValue
        }
        #expect(files.allSatisfy { $0.contains(".so") || ["usr/bin/iptaudit", "usr/sbin/xtables-nft-multi", "usr/sbin/iptables-nft-save", "usr/sbin/ip6tables-nft-save", "etc/passwd", "etc/group", "etc/protocols"].contains($0) },
                "\(files)")
        #expect(!files.contains { $0.contains("swift") || $0.contains("libstdc++") })

        for (rules, backend) in Self.setups {
            let ns = try Self.podNamespace(rules, backend)
            let host = try ns.run([release] + Self.verify, stdin: try Self.manifest)
            // As a container has them: its own mount namespace, /proc and /dev, the root the image's files.
            let inside = try ns.run(["unshare", "--mount", "sh", "-c",
                                     "r=$1; shift; mount -t proc proc \"$r/proc\" && mount --rbind /dev \"$r/dev\" && exec chroot \"$r\" /usr/bin/iptaudit \"$@\"",
                                     "sh", root] + Self.verify, stdin: try Self.manifest)
            #expect(Self.expectedStatus(rules).map { host.status == $0 } ?? (host.status < 2), "\(rules) \(backend): \(host.stderr)")
            #expect(inside.status == host.status, "\(rules) \(backend): \(inside.stderr)")
            #expect(inside.stdout == host.stdout, "\(rules) \(backend)")
            #expect(inside.stderr == host.stderr, "\(rules) \(backend)")
        }
    }

    /// The capabilities docs/running-in-a-cluster.md names for the image, and no more: with a bounding set of
    /// CAP_NET_ADMIN and CAP_NET_RAW alone, root reads legacy and iptables-nft rules to the verdict; legacy x_tables
    /// need CAP_NET_RAW too (libiptc's raw socket), nf_tables CAP_NET_ADMIN alone; without CAP_NET_ADMIN nothing reads.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), .timeLimit(.minutes(2)))
    func netAdminAndNetRawAreTheCapabilitiesAReadNeeds() throws {
        let cases: [(backend: String, bounding: String, status: Int32)] = [
            ("legacy", "-all,+net_admin,+net_raw", 0), ("legacy", "-net_raw", 2), ("legacy", "-net_admin", 2),
            ("nft", "-all,+net_admin,+net_raw", 0), ("nft", "-all,+net_admin", 0), ("nft", "-net_admin", 2),
        ]
        for backend in ["legacy", "nft"] {
            let ns = try Self.podNamespace("examples/healthy.save", backend)
            for c in cases where c.backend == backend {
                let r = try ns.run(["setpriv", "--bounding-set", c.bounding, Binary.path] + Self.verify, stdin: try Self.manifest)
                #expect(r.status == c.status, "\(backend) with bounding set \(c.bounding): \(r.stderr)")
                if c.status == 2 { #expect(r.stderr.contains("CAP_NET_ADMIN"), "\(r.stderr)") }
            }
        }
    }

    /// podman, buildah and runc from Debian's packages (`scripts/install-deps.sh --release`).
    static let containerTools = ["/usr/bin/podman", "/usr/bin/buildah", "/usr/sbin/runc"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }

    /// The image under podman, in a store of its own (vfs: no overlay mount needed; the image is rebuilt only when
    /// the binary's checksum changes), attached to each pod namespace with `--network ns:`: the verdict, exit
    /// status and bytes of the release binary run on the host against the same namespace. Without
    /// `--cap-add NET_ADMIN,NET_RAW` it cannot read, and says so in one line.
    @Test(.enabled(if: enabled && containerTools, "needs root, IPTAUDIT_RELEASE_BIN, podman, buildah and runc (scripts/install-deps.sh --release)"),
          .timeLimit(.minutes(10)))
    func theImageUnderPodmanGivesTheReleaseBinarysVerdict() throws {
        let release = try Self.releaseBinary()
        let store = "/var/tmp/iptaudit-test-containers"
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        try """
            [storage]
            driver = "vfs"
            graphroot = "\(store)/storage"
            runroot = "/run/iptaudit-test-containers"

            """.write(toFile: "\(store)/storage.conf", atomically: true, encoding: .utf8)
        let env = ["CONTAINERS_STORAGE_CONF": "\(store)/storage.conf", "IPTAUDIT_RELEASE_BIN": release, "IPTAUDIT_VERSION": "test"]
        let built = try runCommand(["bash", Fixtures.repositoryPath("scripts/image.sh")], environment: env)
        try #require(built.status == 0, "\(built.stderr)")
        #expect(built.stdout.contains("localhost/iptaudit:test"), "\(built.stdout)")
        // runc, not Debian's default crun, which refuses hosts whose cgroups are mounted v1 and v2 side by side
        // (this sandbox's). podman as root raises a container's open-files and process limits to the kernel's
        // maximum, which fails where root lacks CAP_SYS_RESOURCE (here too); lowering a limit is always allowed.
        let podman = ["env", "CONTAINERS_STORAGE_CONF=\(store)/storage.conf", "podman", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                      "--runtime", "runc"]
        let limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
        let labels = try runCommand(podman + ["image", "inspect", "--format", "{{.User}} {{index .Labels \"org.opencontainers.image.version\"}}", "localhost/iptaudit:latest"])
        #expect(labels.stdout == "0:0 test\n", "\(labels.stderr)")

        for (rules, backend) in Self.setups {
            let ns = try Self.podNamespace(rules, backend)
            let host = try ns.run([release] + Self.verify, stdin: try Self.manifest)
            let run = podman + ["run", "--rm", "-i"] + limits + ["--network", "ns:\(ns.path)", "--cap-add", "NET_ADMIN,NET_RAW", "localhost/iptaudit:latest"] + Self.verify
            let image = try runCommand(run, stdin: try Self.manifest)
            #expect(Self.expectedStatus(rules).map { host.status == $0 } ?? (host.status < 2), "\(rules) \(backend): \(host.stderr)")
            #expect(image.status == host.status, "\(rules) \(backend): \(image.stderr)")
            #expect(image.stdout == host.stdout, "\(rules) \(backend)")
        }
        let ns = try Self.podNamespace("examples/healthy.save", "legacy")
        let unprivileged = try runCommand(podman + ["run", "--rm", "-i"] + limits + ["--network", "ns:\(ns.path)", "localhost/iptaudit:latest"] + Self.verify,
                                          stdin: try Self.manifest)
        // The same refusal the release binary gives on the host without the two capabilities: one line naming the
        // failure, then what to do instead.
        let refused = try ns.run(["setpriv", "--bounding-set", "-net_admin,-net_raw", release] + Self.verify, stdin: try Self.manifest)
        #expect(unprivileged.status == 2)
        #expect(unprivileged.stderr.hasPrefix("iptaudit: cannot read netfilter tables: ") && unprivileged.stderr.contains("CAP_NET_ADMIN"),
                "\(unprivileged.stderr)")
        #expect(unprivileged.stderr == refused.stderr && unprivileged.stdout.isEmpty && refused.status == 2)
    }
}
