import Foundation
import Testing
import TestSupport

/// `iptaudit capture -w FILE` and `--bundle FILE` through the executable: a bundle verifies and shows offline as
/// the namespace did live, keeps a legacy/nft split, carries the pod manifest, and nothing of the environment.
@Suite(.serialized) struct BundleCLITests {
    static let pod = Fixtures.repositoryPath("examples/pod.yaml")
    static let healthy = Fixtures.repositoryPath("examples/healthy.save")
    static let broken = Fixtures.repositoryPath("examples/broken.save")

    static func temporaryFile(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-\(UUID().uuidString)-\(name)").path
    }

    /// The JSON report without its `source` field (the one thing that must differ: namespace vs bundle file).
    /// The verify report without what names the source: its description, and the file and line of each finding's
    /// rule (only `--input` text has them; a bundle's rules are not a file a user opens).
    static func report(_ r: CommandResult) throws -> NSDictionary {
        var doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        doc["source"] = nil
        func withoutOrigins(_ value: Any) -> Any {
            if let d = value as? [String: Any] {
                var d = d.mapValues(withoutOrigins)
                if d["kind"] != nil, d["severity"] != nil { d["file"] = nil; d["line"] = nil }
                return d
            }
            if let a = value as? [Any] { return a.map(withoutOrigins) }
            return value
        }
        return withoutOrigins(doc) as! NSDictionary
    }

    static func bundle(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// A pod: rules as iptables-legacy-save printed them, the istio-iptables arguments or manifest that made them,
    /// and the TPROXY policy routing istio-iptables adds through netlink.
    struct Pod: CustomTestStringConvertible, Sendable {
        var name: String
        var dumps: [(tool: String, file: String)]
        var configuration: [String]
        var tproxy = false
        var testDescription: String { name }

        func load(into ns: TestNamespace) throws {
            try ns.mustRun(["ip", "link", "set", "lo", "up"])
            for dump in dumps { try ns.mustRun([dump.tool], stdin: try String(contentsOfFile: dump.file, encoding: .utf8)) }
            guard tproxy else { return }
            for (flag, any) in [("-4", "0.0.0.0/0"), ("-6", "::/0")] {
                try ns.mustRun(["ip", flag, "rule", "add", "fwmark", "1337", "lookup", "133"])
                try ns.mustRun(["ip", flag, "route", "add", "local", any, "dev", "lo", "table", "133"])
            }
        }
    }

    static func corpus(_ golden: String, families: [String]) -> [(tool: String, file: String)] {
        families.map { f in
            (f == "ipv4" ? "iptables-legacy-restore" : "ip6tables-legacy-restore",
             Fixtures.url("istio/master/live-save/sidecar-iptables/\(golden).\(f).save").path)
        }
    }

    static let pods: [Pod] = [
        Pod(name: "healthy, manifest", dumps: [("iptables-legacy-restore", healthy)], configuration: ["--pod", pod]),
        Pod(name: "broken, manifest", dumps: [("iptables-legacy-restore", broken)], configuration: ["--pod", pod]),
        Pod(name: "tproxy with policy routing", dumps: corpus("tproxy", families: ["ipv4", "ipv6"]),
            configuration: ["--istio-args", "-p 15001 -z 15006 -e 15008 -u 1337 -g 1337 -m TPROXY -t 1337 -r 133 -b * -c not-istio-nic -i 9.9.0.0/16 -x 1.1.0.0/16 --redirect-dns"],
            tproxy: true),
        Pod(name: "ipv6 dns uid gid", dumps: corpus("ipv6-dns-uid-gid", families: ["ipv4", "ipv6"]),
            configuration: ["--istio-args", "-p 15001 -z 15006 -e 15008 -u 3,4 -g 1,2 -t 1337 -r 133 --redirect-dns"]),
    ]

    /// Capture, then verify the bundle with no namespace: the same report, the same exit code. A manifest given to
    /// `capture --pod` is used by `verify --bundle` without `--pod`.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: pods)
    func bundleVerifiesAsTheLiveNamespace(_ pod: Pod) throws {
        let ns = try TestNamespace()
        try pod.load(into: ns)
        let live = try Binary.run(["verify", "--netns", ns.path, "--format", "json"] + pod.configuration)
        let file = Self.temporaryFile("bundle.json")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let manifestGoesInTheBundle = pod.configuration.first == "--pod"
        let captured = try Binary.run(["capture", "--netns", ns.path, "-w", file] + (manifestGoesInTheBundle ? pod.configuration : []))
        try #require(captured.status == 0, "\(captured.stderr)")
        let offline = try Binary.run(["verify", "--bundle", file, "--format", "json"] + (manifestGoesInTheBundle ? [] : pod.configuration))
        #expect(offline.status == live.status, "\(offline.stderr)")
        #expect(try Self.report(offline) == Self.report(live))
        // trace reads the same source options: the same walk offline.
        for packet in [["out", "tcp", "10.0.0.1:9080", "--uid", "1000"], ["in", "tcp", "10.1.2.3:8080", "--iif", "eth0"]] {
            let liveTrace = try Binary.run(["trace"] + packet + ["--format", "json", "--netns", ns.path])
            let offlineTrace = try Binary.run(["trace"] + packet + ["--format", "json", "--bundle", file])
            #expect(liveTrace.status == 0, "\(liveTrace.stderr)")
            #expect(offlineTrace.status == liveTrace.status)
            #expect(try Self.report(offlineTrace) == Self.report(liveTrace), "trace \(packet.joined(separator: " "))")
        }
        let doc = try Self.bundle(file)
        #expect((doc["podManifest"] as? [String: Any])?["text"] as? String
                == (manifestGoesInTheBundle ? try String(contentsOfFile: Self.pod, encoding: .utf8) : nil))
        #expect(doc["networkNamespaceInode"] as? UInt64 == (try? ns.mustRun(["stat", "-L", "-c", "%i", "/proc/self/ns/net"]))
            .flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        if pod.tproxy {
            let routes = (doc["policyRouting"] as? [String: Any])?["routes"] as? [[String: Any]] ?? []
            #expect(routes.contains { $0["type"] as? String == "local" && $0["table"] as? String == "133" })
        }
    }

    /// Rules in both legacy x_tables and nf_tables: the bundle keeps both, `show --backend` reads either as live
    /// does, and verify reports the split from the bundle too.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func splitBackendsSurviveTheBundle() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["iptables-legacy-restore"], stdin: try String(contentsOfFile: Self.healthy, encoding: .utf8))
        try ns.mustRun(["iptables-nft-restore"], stdin: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 9000 -j DROP\nCOMMIT\n")
        let file = Self.temporaryFile("split.json")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let captured = try Binary.run(["capture", "--netns", ns.path, "-w", file])
        try #require(captured.status == 0, "\(captured.stderr)")

        let doc = try Self.bundle(file)
        let families = doc["families"] as? [[String: Any]] ?? []
        let ipv4 = try #require(families.first { $0["family"] as? String == "ipv4" })
        #expect(ipv4["populatedBackends"] as? [String] == ["legacy", "nft"])
        #expect(ipv4["chosenBackend"] as? String == "legacy")
        let dumps = doc["rules"] as? [[String: Any]] ?? []
        let nft = try #require(dumps.first { $0["backend"] as? String == "nft" && $0["family"] as? String == "ipv4" })
        #expect((nft["saveText"] as? String)?.contains("-A INPUT -p tcp -m tcp --dport 9000 -j DROP") == true)
        // Counters are kept: `[packets:bytes]` before each rule.
        #expect((nft["saveText"] as? String)?.contains("[0:0] -A INPUT") == true)

        for backend in ["auto", "legacy", "nft"] {
            let args = ["show", "--format", "save", "--family", "ipv4", "--backend", backend]
            let live = try Binary.run(args + ["--netns", ns.path])
            let offline = try Binary.run(args + ["--bundle", file])
            #expect(offline.status == 0, "\(offline.stderr)")
            #expect(withoutSaveComments(offline.stdout) == withoutSaveComments(live.stdout), "backend \(backend)")
            #expect(offline.stderr.contains("both legacy x_tables and nf_tables") == live.stderr.contains("both legacy x_tables and nf_tables"))
        }
        let live = try Binary.run(["verify", "--netns", ns.path, "--pod", Self.pod, "--format", "json"])
        let offline = try Binary.run(["verify", "--bundle", file, "--pod", Self.pod, "--format", "json"])
        #expect(offline.status == live.status)
        #expect(try Self.report(offline) == Self.report(live))
        #expect(offline.stdout.contains("backend-split"))
    }

    /// `--pid`: the runtime inputs of the process (its resolv.conf nameservers, IPv6 evidence) go into the bundle
    /// and verify offline uses them as a live `verify --pid` does.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func runtimeInputsOfAProcessTravelInTheBundle() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["iptables-legacy-restore"], stdin: try String(contentsOfFile: Self.healthy, encoding: .utf8))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // nsenter execs sleep in place, so the pid is the sleeper's (ip netns exec forks).
        process.arguments = ["nsenter", "--net=\(ns.path)", "sleep", "60"]
        try process.run()
        defer {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let pid = process.processIdentifier
        let want = try ns.mustRun(["stat", "-L", "-c", "%i", "/proc/self/ns/net"])
        var entered = false
        for _ in 0..<100 where !entered {
            let r = try runCommand(["stat", "-L", "-c", "%i", "/proc/\(pid)/ns/net"])
            entered = r.status == 0 && r.stdout == want
            if !entered { usleep(20_000) }
        }
        try #require(entered, "the sleeper never entered the namespace")

        let file = Self.temporaryFile("pid.json")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let captured = try Binary.run(["capture", "--pid", "\(pid)", "-w", file])
        try #require(captured.status == 0, "\(captured.stderr)")
        let live = try Binary.run(["verify", "--pid", "\(pid)", "--pod", Self.pod, "--format", "json"])
        let offline = try Binary.run(["verify", "--bundle", file, "--pod", Self.pod, "--format", "json"])
        #expect(offline.status == live.status)
        #expect(try Self.report(offline) == Self.report(live))

        let resolv = try String(contentsOfFile: "/proc/\(pid)/root/etc/resolv.conf", encoding: .utf8)
        var nameservers: [String] = []
        for line in resolv.split(separator: "\n") {
            let words = line.split(separator: " ")
            if words.count >= 2, words[0] == "nameserver" { nameservers.append(String(words[1])) }
        }
        let runtime = try #require(try Self.bundle(file)["runtime"] as? [String: Any])
        #expect(runtime["nameservers"] as? [String] == nameservers)
        #expect(runtime["hasGlobalIPv6"] as? Bool == false, "a fresh namespace has no global IPv6 address")
        let source = try #require(try Self.bundle(file)["source"] as? [String: Any])
        #expect(source["pid"] as? Int == Int(pid))
    }

    /// `--pid` of the istio-proxy process without `--pod`: the proxy's view of its pod (the environment variables
    /// the configuration is read from, `/etc/istio/pod`, its identity) goes into the bundle, and `verify --bundle`
    /// derives the same configuration and verdict as a live `verify --pid`; nothing else of the environment is kept.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func theProxysViewOfItsPodTravelsInTheBundle() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["iptables-legacy-restore"], stdin: try Fixtures.text("istio/master/live-save/cni-sidecar-iptables/dns.ipv4.save"))
        let etc = URL(fileURLWithPath: Self.temporaryFile("etc"))
        try FileManager.default.createDirectory(at: etc.appendingPathComponent("istio/pod"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: etc) }
        try FileManager.default.copyItem(atPath: "/etc/ld.so.cache", toPath: etc.appendingPathComponent("ld.so.cache").path)
        try "nameserver 10.96.0.10\n".write(to: etc.appendingPathComponent("resolv.conf"), atomically: true, encoding: .utf8)
        let annotations = "sidecar.istio.io/status=\"{\\\"containers\\\":[\\\"istio-proxy\\\"]}\"\n"
        // A whole pod spec with a literal credential, as kubectl apply leaves it: never recorded.
        let lastApplied = "kubectl.kubernetes.io/last-applied-configuration=\"{\\\"env\\\":\\\"DB_PASSWORD=hunter2\\\"}\"\n"
        try (lastApplied + annotations).write(to: etc.appendingPathComponent("istio/pod/annotations"), atomically: true, encoding: .utf8)
        try "app=\"web\"\nistio.io/rev=\"default\"\n".write(to: etc.appendingPathComponent("istio/pod/labels"), atomically: true, encoding: .utf8)
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        holder.arguments = ["netns", "exec", ns.name, "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                            "mount --bind \"$0\" /etc && exec /usr/bin/setpriv --reuid=1337 --regid=1337 --clear-groups /usr/bin/sleep 60", etc.path]
        holder.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ISTIO_META_CLUSTER_ID": "Kubernetes", "ISTIO_META_DNS_CAPTURE": "true",
                              "POD_NAME": "web-0", "POD_NAMESPACE": "shop", "INSTANCE_IP": "10.0.0.1", "APP_TOKEN": "s3cret",
                              "ISTIO_KUBE_APP_PROBERS": #"{"/app-health/web/livez":{"httpGet":{"httpHeaders":[{"name":"Authorization","value":"Bearer t0ken"}]}}}"#]
        try holder.run()
        defer { holder.terminate(); holder.waitUntilExit() }
        var ready = false
        for _ in 0..<200 where !ready {
            ready = (try? String(contentsOfFile: "/proc/\(holder.processIdentifier)/comm", encoding: .utf8)) == "sleep\n"
                && (try? String(contentsOfFile: "/proc/\(holder.processIdentifier)/root/etc/istio/pod/annotations", encoding: .utf8)) == lastApplied + annotations
            if !ready { usleep(25_000) }
        }
        try #require(ready, "the proxy process never started in its pod")
        let pid = holder.processIdentifier

        let file = Self.temporaryFile("proxy.json")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let captured = try Binary.run(["capture", "--pid", "\(pid)", "-w", file])
        try #require(captured.status == 0, "\(captured.stderr)")
        let live = try Binary.run(["verify", "--pid", "\(pid)", "--no-ipv6", "--format", "json"])
        let offline = try Binary.run(["verify", "--bundle", file, "--no-ipv6", "--format", "json"])
        #expect(live.status == 0, "istio-cni's DNS rules for a pod whose proxy captures DNS: \(live.stdout)")
        #expect(offline.status == live.status)
        #expect(try Self.report(offline) == Self.report(live))
        let text = try Binary.run(["verify", "--bundle", file, "--no-ipv6"])
        #expect(text.stdout.contains("rules by istio-cni"), "\(text.stdout)")

        let proxy = try #require(try Self.bundle(file)["proxy"] as? [String: Any])
        #expect(proxy["pid"] as? Int == Int(pid) && proxy["uid"] as? Int == 1337 && proxy["gid"] as? Int == 1337)
        #expect(proxy["annotations"] as? String == annotations && proxy["labels"] as? String == "istio.io/rev=\"default\"\n")
        #expect(proxy["environment"] as? [String: String] == ["ISTIO_META_DNS_CAPTURE": "true", "POD_NAME": "web-0", "POD_NAMESPACE": "shop",
                                                             "INSTANCE_IP": "10.0.0.1"],
                "only what the configuration is read from: not PATH, not the application's token, not the probes' headers")
        let recorded = try String(contentsOfFile: file, encoding: .utf8)
        for secret in ["s3cret", "t0ken", "hunter2"] { #expect(!recorded.contains(secret), "\(secret) reached the bundle") }
        // With --pod the manifest is the pod's account and no proxy view is recorded.
        let withPod = Self.temporaryFile("proxy-pod.json")
        defer { try? FileManager.default.removeItem(atPath: withPod) }
        try #require(try Binary.run(["capture", "--pid", "\(pid)", "--pod", Self.pod, "-w", withPod]).status == 0)
        #expect(try Self.bundle(withPod)["proxy"] == nil)
    }

    /// Saved dumps capture too (backend `text`), and verify as the dumps themselves.
    @Test func captureOfInputsVerifiesAsTheInputs() throws {
        let file = Self.temporaryFile("text.json")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let captured = try Binary.run(["capture", "--input", Self.broken, "-w", file])
        try #require(captured.status == 0, "\(captured.stderr)")
        let direct = try Binary.run(["verify", "--input", Self.broken, "--pod", Self.pod, "--format", "json"])
        let offline = try Binary.run(["verify", "--bundle", file, "--pod", Self.pod, "--format", "json"])
        #expect(direct.status == 1)
        #expect(offline.status == direct.status)
        #expect(try Self.report(offline) == Self.report(direct))
        // The manifest kept by `capture --pod` stands in for --pod; a --pod given to verify wins over it.
        let withManifest = Self.temporaryFile("manifest.json")
        defer { try? FileManager.default.removeItem(atPath: withManifest) }
        try #require(try Binary.run(["capture", "--input", Self.broken, "--pod", Self.pod, "-w", withManifest]).status == 0)
        let kept = try Binary.run(["verify", "--bundle", withManifest, "--format", "json"])
        #expect(try Self.report(kept) == Self.report(direct))
        let cni = Fixtures.url("istio/master/injected-workloads/hello.yaml.cni.injected").path
        let overridden = try Binary.run(["verify", "--bundle", withManifest, "--pod", cni, "--format", "json"])
        let cniDirect = try Binary.run(["verify", "--input", Self.broken, "--pod", cni, "--format", "json"])
        #expect(try Self.report(overridden) == Self.report(cniDirect))
        #expect(try Self.report(overridden) != Self.report(kept))

        let doc = try Self.bundle(file)
        #expect((doc["source"] as? [String: Any])?["kind"] as? String == "text")
        #expect(doc["runtime"] == nil, "runtime inputs are gathered on live reads only")
    }

    /// The bundle is built from an allow-list: a variable of the capturing process never reaches the file.
    @Test func theEnvironmentIsNotCaptured() throws {
        try expectNoCanary(["--input", Self.healthy, "--pod", Self.pod])
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func theEnvironmentIsNotCapturedLive() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["iptables-legacy-restore"], stdin: try String(contentsOfFile: Self.healthy, encoding: .utf8))
        try expectNoCanary(["--netns", ns.path, "--pod", Self.pod])
    }

    func expectNoCanary(_ args: [String]) throws {
        let file = Self.temporaryFile("canary.json")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let canary = "canary-\(UUID().uuidString)"
        let r = try runCommand([Binary.path, "capture", "-w", file] + args,
                               environment: ["IPTAUDIT_CANARY_SECRET": canary, "AWS_SECRET_ACCESS_KEY": canary])
        try #require(r.status == 0, "\(r.stderr)")
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(!text.isEmpty)
        #expect(!text.contains(canary))
        #expect(!text.contains("IPTAUDIT_CANARY_SECRET"))
        #expect(!text.contains("AWS_SECRET_ACCESS_KEY"))
    }

    /// A bad bundle is exit 2 with one line naming the file and the fault; a bundle with another source is usage.
    @Test func badBundlesExitTwoWithOneLine() throws {
        let good = Self.temporaryFile("good.json")
        let bad = Self.temporaryFile("v7.json")
        let cut = Self.temporaryFile("cut.json")
        defer { for f in [good, bad, cut] { try? FileManager.default.removeItem(atPath: f) } }
        try #require(try Binary.run(["capture", "--input", Self.healthy, "-w", good]).status == 0)
        var doc = try Self.bundle(good)
        doc["schemaVersion"] = 7
        try JSONSerialization.data(withJSONObject: doc).write(to: URL(fileURLWithPath: bad))
        let data = try Data(contentsOf: URL(fileURLWithPath: good))
        try data.prefix(data.count / 3).write(to: URL(fileURLWithPath: cut))

        for command in ["verify", "show"] {
            let v7 = try Binary.run([command, "--bundle", bad])
            #expect(v7.status == 2)
            #expect(v7.stderr == "iptaudit: \(bad): unsupported schemaVersion 7, expected 1\n")
            let truncated = try Binary.run([command, "--bundle", cut])
            #expect(truncated.status == 2)
            #expect(truncated.stderr == "iptaudit: \(cut): not JSON (truncated or not an iptaudit bundle)\n")
            let missing = try Binary.run([command, "--bundle", good + ".none"])
            #expect(missing.status == 2)
            #expect(missing.stderr == "iptaudit: \(good).none: no such file\n")
        }
        let mixed = try Binary.run(["verify", "--bundle", good, "--input", Self.healthy])
        #expect(mixed.status == 64)
        #expect(mixed.stderr.contains("--bundle reads a saved capture"))
        let recapture = try Binary.run(["capture", "--bundle", good, "-w", bad])
        #expect(recapture.status == 64)
    }
}
