import Foundation
import RuleReaders
import Testing
import TestSupport

/// `iptaudit node` on a simulated node: 30 pod network namespaces, each with a veth and a pod IP, most held by a
/// process in a private mount namespace whose `/etc` carries what Istio mounts (`istio/pod/annotations`,
/// `labels`, `resolv.conf`) and, for sidecars, a `pilot-agent` running as the proxy's UID with the injector's
/// environment; rules from the corpus (healthy sidecars on both backends, broken ones, ambient, none) and a
/// `--pods` list. Every namespace must be classified, and each meshed one judged exactly as `verify` judges it
/// alone.
@Suite(.serialized) struct NodeAuditTests {
    enum Kind: String, CaseIterable {
        case healthyLegacy, healthyNft, dnsCapture, customUID, proxyUIDDrift, outboundHookMissing, ambient, istioInit
        case ambientByRulesOnly, notMeshed, notMeshedUnheld, meshedNoRules, meshedNoRulesFromList
    }

    struct PodSpec {
        var index: Int
        var kind: Kind
        var loUp: Bool
        var name: String { "pod-\(index)" }
        var ip: String { "10.77.\(index / 200).\(index % 200 + 2)" }

        var rules: (file: String, restore: String)? {
            let cni = "istio/master/live-save/cni-sidecar-iptables/"
            switch kind {
            case .healthyLegacy, .proxyUIDDrift, .istioInit: return (cni + "basic.ipv4.save", "iptables-legacy-restore")
            case .healthyNft: return (cni + "basic.ipv4.save", "iptables-nft-restore")
            case .outboundHookMissing: return (cni + "basic.ipv4.save", index % 2 == 0 ? "iptables-legacy-restore" : "iptables-nft-restore")
            case .dnsCapture: return (cni + "dns.ipv4.save", "iptables-legacy-restore")
            case .customUID: return (cni + "custom-uid.ipv4.save", "iptables-nft-restore")
            case .ambient, .ambientByRulesOnly: return ("istio/master/live-save/ambient-iptables/default.ipv4.save", "iptables-legacy-restore")
            case .notMeshed, .notMeshedUnheld, .meshedNoRules, .meshedNoRulesFromList: return nil
            }
        }

        /// The proxy's UID and GID when the namespace has a pilot-agent.
        var proxy: (uid: Int, gid: Int)? {
            switch kind {
            case .healthyLegacy, .healthyNft, .dnsCapture, .outboundHookMissing, .meshedNoRules, .istioInit: return (1337, 1337)
            case .customUID, .proxyUIDDrift: return (1000670000, 1000670001)
            default: return nil
            }
        }

        var held: Bool { kind != .notMeshedUnheld }

        /// The `--pods` item, for the pods the list names (the others are known only from what is in the pod).
        var listItem: [String: Any]? {
            var annotations: [String: String] = [:]
            var containers: [[String: Any]] = [["name": "app", "image": "example/app:1"]]
            switch kind {
            case .ambient: annotations["ambient.istio.io/redirection"] = "enabled"
            case .notMeshed: break
            case .meshedNoRulesFromList:
                annotations["sidecar.istio.io/status"] = #"{"containers":["istio-proxy"]}"#
                containers.append(["name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.26.8", "args": ["proxy", "sidecar"]])
            case .healthyLegacy where index % 3 == 0:
                annotations["sidecar.istio.io/status"] = #"{"containers":["istio-proxy"]}"#
                containers.append(["name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.26.8", "args": ["proxy", "sidecar"],
                                   "securityContext": ["runAsUser": 1337, "runAsGroup": 1337]])
            default: return nil
            }
            return ["apiVersion": "v1", "kind": "Pod",
                    "metadata": ["name": name, "namespace": "node-test", "annotations": annotations],
                    "spec": ["containers": containers, "nodeName": "sim"],
                    "status": ["phase": "Running", "podIP": ip, "podIPs": [["ip": ip]]]]
        }

        var expectedMode: String {
            switch kind {
            case .healthyLegacy, .healthyNft, .dnsCapture, .customUID, .proxyUIDDrift, .outboundHookMissing, .istioInit: "sidecar"
            case .ambient, .ambientByRulesOnly: "ambient"
            case .notMeshed, .notMeshedUnheld: "not-meshed"
            case .meshedNoRules, .meshedNoRulesFromList: "meshed-no-rules"
            }
        }

        /// The node table's BACKEND: the store holding the pod's rules (IPv4 only here), `-` without rules.
        var expectedBackend: String {
            guard let rules else { return "-" }
            return rules.restore.hasPrefix("iptables-legacy") ? "legacy" : "nft"
        }

        var expectedVerdict: String {
            switch kind {
            case .healthyLegacy, .healthyNft, .dnsCapture, .customUID, .ambient, .ambientByRulesOnly, .istioInit: "proven"
            case .proxyUIDDrift, .outboundHookMissing, .meshedNoRules, .meshedNoRulesFromList: "failed"
            case .notMeshed, .notMeshedUnheld: "not-meshed"
            }
        }
    }

    static let layout: [Kind] = [
        .healthyLegacy, .healthyLegacy, .healthyLegacy, .healthyLegacy, .healthyLegacy, .healthyLegacy,
        .healthyNft, .healthyNft, .healthyNft, .healthyNft, .dnsCapture, .dnsCapture, .customUID, .customUID,
        .proxyUIDDrift, .proxyUIDDrift, .outboundHookMissing, .outboundHookMissing,
        .ambient, .ambient, .ambient, .ambientByRulesOnly,
        .notMeshed, .notMeshed, .notMeshed, .notMeshedUnheld,
        .meshedNoRules, .meshedNoRules, .meshedNoRulesFromList, .healthyNft, .istioInit, .istioInit,
    ]

    /// The simulated node: namespaces, the processes holding them, their private `/etc`s. Everything it made is
    /// removed on `close()` (processes killed and reaped, namespaces deleted, files removed).
    final class SimulatedNode {
        let specs: [PodSpec]
        var namespaces: [TestNamespace] = []
        let bridge: TestNamespace
        var holders: [Int: Process] = [:]
        let directory: URL
        var podsFile: String { directory.appendingPathComponent("pods.json").path }

        init(specs: [PodSpec]) throws {
            self.specs = specs
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-node-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            // The node side of each veth lives in a namespace of its own, so the host's links are never touched.
            bridge = try TestNamespace()
            do { try build() } catch { close(); throw error }
        }

        private func build() throws {
            let sleep = directory.appendingPathComponent("bin")
            try FileManager.default.createDirectory(at: sleep, withIntermediateDirectories: true)
            for name in ["pilot-agent", "pause"] {
                try FileManager.default.copyItem(atPath: "/usr/bin/sleep", toPath: sleep.appendingPathComponent(name).path)
            }
            var items: [[String: Any]] = []
            for spec in specs {
                let ns = try TestNamespace()
                namespaces.append(ns)
                try bridge.mustRun(["ip", "link", "add", "vh\(spec.index)", "type", "veth", "peer", "name", "eth0", "netns", ns.name])
                try bridge.mustRun(["ip", "link", "set", "vh\(spec.index)", "up"])
                try ns.mustRun(["ip", "addr", "add", spec.ip + "/16", "dev", "eth0"])
                try ns.mustRun(["ip", "link", "set", "eth0", "up"])
                if spec.loUp { try ns.mustRun(["ip", "link", "set", "lo", "up"]) }
                if spec.kind == .ambient || spec.kind == .ambientByRulesOnly {
                    // What istio-cni's node agent adds beside its rules: replies to ztunnel's connections stay in the pod.
                    try ns.mustRun(["ip", "rule", "add", "fwmark", "0x111/0xfff", "lookup", "100", "pref", "32764"])
                    try ns.mustRun(["ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"])
                }
                if let rules = spec.rules {
                    var text = try Fixtures.text(rules.file)
                    if spec.kind == .outboundHookMissing {
                        text = text.replacingOccurrences(of: "-A OUTPUT -j ISTIO_OUTPUT\n", with: "")
                    }
                    if spec.kind == .istioInit { text = NodeAuditTests.istioInitRules(fromPluginRules: text) }
                    try ns.mustRun([rules.restore], stdin: text)
                }
                if let item = spec.listItem {
                    // A completed Job's pod that had this address before, listed first (`kubectl get pods` lists
                    // finished pods too): it must never name this namespace.
                    items.insert(["apiVersion": "v1", "kind": "Pod",
                                  "metadata": ["name": "job-done-\(spec.index)", "namespace": "node-test"],
                                  "spec": ["containers": [["name": "job", "image": "example/job:1"]], "nodeName": "sim"],
                                  "status": ["phase": "Succeeded", "podIP": spec.ip, "podIPs": [["ip": spec.ip]]]], at: 0)
                    items.append(item)
                }
                if spec.held { try hold(spec, ns) }
            }
            let list: [String: Any] = ["apiVersion": "v1", "kind": "List", "items": items]
            try JSONSerialization.data(withJSONObject: list).write(to: URL(fileURLWithPath: podsFile))
        }

        /// One process in the namespace, in a private mount namespace whose `/etc` is the pod's.
        private func hold(_ spec: PodSpec, _ ns: TestNamespace) throws {
            let etc = directory.appendingPathComponent("etc-\(spec.index)")
            try FileManager.default.createDirectory(at: etc.appendingPathComponent("istio/pod"), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "/etc/ld.so.cache", toPath: etc.appendingPathComponent("ld.so.cache").path)
            try "search node-test.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
                .write(to: etc.appendingPathComponent("resolv.conf"), atomically: true, encoding: .utf8)
            var environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
            var binary = "pause"
            var identity = (uid: 65535, gid: 65535)
            if let proxy = spec.proxy {
                binary = "pilot-agent"
                identity = proxy
                // The injector's status names the init container it added; istio-init's pods carry no traffic annotations.
                let initContainers = spec.kind == .istioInit ? #"\"initContainers\":[\"istio-init\"],"# : ""
                try "sidecar.istio.io/status=\"{\(initContainers)\\\"containers\\\":[\\\"istio-proxy\\\"]}\"\nkubectl.kubernetes.io/default-container=\"app\"\n"
                    .write(to: etc.appendingPathComponent("istio/pod/annotations"), atomically: true, encoding: .utf8)
                try "app=\"\(spec.name)\"\nsecurity.istio.io/tlsMode=\"istio\"\n"
                    .write(to: etc.appendingPathComponent("istio/pod/labels"), atomically: true, encoding: .utf8)
                environment["ISTIO_META_CLUSTER_ID"] = "Kubernetes"
                environment["ISTIO_META_POD_PORTS"] = "[]"
                environment["INSTANCE_IP"] = spec.ip
                environment["POD_NAME"] = spec.name
                environment["POD_NAMESPACE"] = "node-test"
                if spec.kind == .dnsCapture { environment["ISTIO_META_DNS_CAPTURE"] = "true" }
                // The proxy in this pod runs as another UID than the one its rules exempt.
                if spec.kind == .proxyUIDDrift { identity = (1000670000, 1000670001) }
            }
            let executable = directory.appendingPathComponent("bin/" + binary).path
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            p.arguments = ["netns", "exec", ns.name, "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                           "mount --bind \"$0\" /etc && exec /usr/bin/setpriv --reuid=\"$1\" --regid=\"$2\" --clear-groups \"$3\" infinity",
                           etc.path, String(identity.uid), String(identity.gid), executable]
            p.environment = environment
            try p.run()
            holders[spec.index] = p
            // ip, unshare, sh and setpriv each exec the next in the same process: wait for the last one.
            var waited = 0
            while (try? String(contentsOfFile: "/proc/\(p.processIdentifier)/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines) != binary,
                  p.isRunning, waited < 200 {
                usleep(25_000)
                waited += 1
            }
            guard p.isRunning, waited < 200 else {
                throw TestNamespaceError.commandFailed("holder of \(spec.name)", p.isRunning ? -1 : p.terminationStatus, "never became \(binary)")
            }
        }

        func pid(_ spec: PodSpec) -> Int32? { holders[spec.index]?.processIdentifier }

        func inode(_ spec: PodSpec) throws -> UInt64 {
            let attributes = try FileManager.default.attributesOfItem(atPath: namespaces[spec.index].path)
            return try #require((attributes[.systemFileNumber] as? NSNumber)?.uint64Value)
        }

        func close() {
            for p in holders.values {
                // SIGKILL: the test runner's signal mask can leave SIGTERM blocked in the child.
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
            }
            holders = [:]
            namespaces = []
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// What istio-init installs with the injector's default arguments (`-b '*' -d 15090,15021,15020`, no `-o`), from
    /// the istio-cni plugin's rules for the same pod: the plugin alone also exempts the status port outbound, and it
    /// orders the inbound exemptions by port where istio-iptables keeps `-d`'s order.
    static func istioInitRules(fromPluginRules text: String) -> String {
        let statusPortOutbound = ["-A ISTIO_OUTPUT -p tcp -m tcp --dport 15020 -j RETURN\n", "-A ISTIO_OUTPUT -p udp -m udp --dport 15020 -j RETURN\n"]
        let inbound = { (port: Int) in "-A ISTIO_INBOUND -p tcp -m tcp --dport \(port) -j RETURN\n" }
        precondition(statusPortOutbound.allSatisfy(text.contains) && text.contains(inbound(15020) + inbound(15021) + inbound(15090)),
                     "the plugin's rules changed shape")
        var out = text
        for line in statusPortOutbound { out = out.replacingOccurrences(of: line, with: "") }
        return out.replacingOccurrences(of: inbound(15020) + inbound(15021) + inbound(15090), with: inbound(15090) + inbound(15021) + inbound(15020))
    }

    static func specs() -> [PodSpec] {
        layout.enumerated().map { PodSpec(index: $0.offset, kind: $0.element, loUp: $0.offset % 2 == 0) }
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func everyNamespaceIsClassifiedAndJudgedAsVerifyJudgesItAlone() throws {
        let specs = Self.specs()
        #expect(Set(specs.map(\.loUp)) == [true, false])
        let node = try SimulatedNode(specs: specs)
        defer { node.close() }

        let r = try Binary.run(["node", "-o", "json", "--pods", node.podsFile, "--jobs", "2"])
        #expect(r.status == 1, "broken pods make the audit fail: \(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        #expect(doc["schemaVersion"] as? Int == 1)
        let pods = try #require(doc["pods"] as? [[String: Any]])
        var byInode: [UInt64: [[String: Any]]] = [:]
        for p in pods { byInode[(p["inode"] as? NSNumber)?.uint64Value ?? 0, default: []].append(p) }

        for spec in specs {
            let inode = try node.inode(spec)
            let found = byInode[inode] ?? []
            try #require(found.count == 1, "\(spec.name) (\(spec.kind)) listed \(found.count) times")
            let pod = found[0]
            #expect(pod["mode"] as? String == spec.expectedMode, "\(spec.name) (\(spec.kind)): \(pod)")
            let firstFinding = ((pod["verification"] as? [String: Any])?["findings"] as? [[String: Any]])?.first
            #expect(pod["verdict"] as? String == spec.expectedVerdict,
                    "\(spec.name) (\(spec.kind)): \(pod["failure"] ?? "") \(firstFinding?["kind"] ?? "") \(firstFinding?["message"] ?? "")")
            #expect(pod["podIPs"] as? [String] == [spec.ip])
            if spec.proxy != nil || spec.listItem != nil {
                #expect(pod["namespace"] as? String == "node-test")
                #expect(pod["name"] as? String == spec.name)
            }
            if let pid = node.pid(spec) {
                #expect((pod["pid"] as? NSNumber)?.int32Value == pid)
                #expect(pod["netns"] as? String == "/proc/\(pid)/ns/net")
            } else {
                #expect(pod["pid"] == nil)
                #expect(pod["netns"] as? String == node.namespaces[spec.index].path)
            }
            if spec.kind == .istioInit {
                // Judged as istio-init's rules, which the proxy's view of the pod names (not as the plugin's).
                let configuration = ((pod["verification"] as? [String: Any])?["configuration"] as? [String]) ?? []
                #expect(configuration.first?.contains("rules by istio-init") == true, "\(spec.name): \(configuration)")
            }
            if let proxy = spec.proxy {
                #expect((pod["proxyPid"] as? NSNumber)?.int32Value == node.pid(spec))
                let uid = spec.kind == .proxyUIDDrift ? 1000670000 : proxy.uid
                #expect((pod["proxyUid"] as? NSNumber)?.intValue == uid)
            }

            // The same namespace through `verify` alone: --pid of the process node read (--netns without one),
            // --pod with the list's item when the list names the pod.
            var args = ["verify", "--format", "json"]
            if let pid = node.pid(spec) { args += ["--pid", String(pid)] } else { args += ["--netns", node.namespaces[spec.index].path] }
            if let item = spec.listItem {
                let file = node.directory.appendingPathComponent("\(spec.name).json")
                try JSONSerialization.data(withJSONObject: item).write(to: file)
                args += ["--pod", file.path]
            }
            let alone = try Binary.run(args)
            if spec.expectedMode == "not-meshed" {
                // Every obligation fails (1); with the list's manifest, a pod Istio never injected is not one verify can
                // judge at all (2). Either way verify says first that the namespace holds no Istio chain.
                #expect((alone.status == 1 || alone.status == 2) && alone.stderr.hasPrefix("iptaudit: no Istio chain"), "\(spec.name): \(alone.stderr)")
                #expect(pod["verification"] == nil)
                continue
            }
            #expect(alone.status == (spec.expectedVerdict == "proven" ? 0 : 1), "\(spec.name) (\(spec.kind)): \(alone.stderr)")
            let verified = try #require(try JSONSerialization.jsonObject(with: Data(alone.stdout.utf8)) as? [String: Any], "\(alone.stderr)")
            let inNode = try #require(pod["verification"] as? [String: Any], "\(spec.name) has no verification")
            func canonical(_ value: Any?) -> Data? {
                value.flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys, .fragmentsAllowed]) }
            }
            let differing = Set(inNode.keys).union(verified.keys).filter { canonical(inNode[$0]) != canonical(verified[$0]) }.sorted()
            #expect(differing.isEmpty, Comment(rawValue: "\(spec.name) (\(spec.kind)): node and verify differ in \(differing): "
                + differing.map { "\($0): node \(String(describing: inNode[$0]).prefix(300)) verify \(String(describing: verified[$0]).prefix(300))" }.joined(separator: "; ")))
            let notes = (pod["notes"] as? [String]) ?? []
            #expect(notes == alone.stderr.split(separator: "\n").map(String.init), "\(spec.name): what verify says on stderr, node keeps")
        }
        // The kinds of error this node has are the ones its broken pods carry.
        let kinds = Set(pods.filter { p in specs.contains { (try? node.inode($0)) == (p["inode"] as? NSNumber)?.uint64Value && $0.expectedVerdict == "failed" } }
            .flatMap { (($0["verification"] as? [String: Any])?["findings"] as? [[String: Any]]) ?? [] }
            .filter { $0["severity"] as? String == "error" }.compactMap { $0["kind"] as? String })
        #expect(kinds.contains("owner-match-gap"))
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func tableJUnitAndMetricsAgreeWithTheJSON() throws {
        let specs = Self.specs().filter { [.healthyLegacy, .proxyUIDDrift, .ambient, .notMeshed, .meshedNoRules].contains($0.kind) }
        let node = try SimulatedNode(specs: specs.enumerated().map { PodSpec(index: $0.offset, kind: $0.element.kind, loUp: $0.element.loUp) })
        defer { node.close() }

        let text = try Binary.run(["node", "--pods", node.podsFile])
        #expect(text.status == 1)
        let header = try #require(text.stdout.split(separator: "\n").first)
        #expect(header.hasPrefix("POD") && header.contains("MODE") && header.contains("FIRST FINDING"))
        for spec in node.specs where spec.proxy != nil || spec.listItem != nil {
            let line = try #require(text.stdout.split(separator: "\n").first { $0.hasPrefix("node-test/\(spec.name) ") }, "\(spec.name) not in the table")
            #expect(line.contains(" \(spec.expectedMode) ") && line.contains(" \(spec.expectedVerdict) "), "\(line)")
            let columns = line.split(separator: " ", omittingEmptySubsequences: true)
            #expect(columns.count > 2 && columns[2] == spec.expectedBackend, "\(spec.name): \(line)")
        }

        let metrics = try Binary.run(["node", "--output", "prometheus", "--pods", node.podsFile])
        #expect(metrics.status == 1)
        for spec in node.specs where spec.proxy != nil || spec.listItem != nil {
            let prefix = "iptaudit_pod_capture_ok{namespace=\"node-test\",pod=\"\(spec.name)\",mode=\"\(spec.expectedMode)\",netns=\"\(try node.inode(spec))\"} "
            let sample = metrics.stdout.split(separator: "\n").first { $0.hasPrefix(prefix) }
            switch spec.expectedVerdict {
            case "proven": #expect(sample.map { $0.hasSuffix(" 1") } == true, "\(spec.name): \(sample ?? "missing")")
            case "failed": #expect(sample.map { $0.hasSuffix(" 0") } == true, "\(spec.name): \(sample ?? "missing")")
            default: #expect(sample == nil, "not-meshed pods have no capture_ok sample")
            }
        }
        #expect(metrics.stdout.contains("iptaudit_pod_findings{namespace=\"node-test\",pod=\"\(node.specs.first { $0.kind == .proxyUIDDrift }!.name)\",mode=\"sidecar\""))
        #expect(metrics.stdout.contains("# TYPE iptaudit_pods gauge\n"))

        let file = node.directory.appendingPathComponent("node.prom").path
        let written = try Binary.run(["node", "--format", "junit", "--pods", node.podsFile, "--output-file", file])
        #expect(written.status == 1 && written.stdout.isEmpty)
        let junit = try String(contentsOfFile: file, encoding: .utf8)
        for spec in node.specs where spec.proxy != nil || spec.listItem != nil {
            #expect(junit.contains("<testsuite name=\"iptaudit node: node-test/\(spec.name) [\(spec.expectedMode)]\""), "\(spec.name)")
        }
        let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o644)

        // `-` is standard output, as the refusal below offers, not a file named "-" in the working directory.
        let dash = try runCommand(["sh", "-c", "cd \"$1\" && exec \"$2\" node --format junit --pods \"$3\" --output-file -", "sh",
                                   node.directory.path, Binary.path, node.podsFile])
        #expect(dash.status == 1 && dash.stdout.hasPrefix("<?xml"), "\(dash.stderr)")
        #expect(!FileManager.default.fileExists(atPath: node.directory.appendingPathComponent("-").path))
        let directory = try Binary.run(["node", "--pods", node.podsFile, "--output-file", node.directory.path])
        #expect(directory.status == 2 && directory.stderr.hasPrefix("iptaudit: \(node.directory.path): it is a directory"), "\(directory.stderr)")
        #expect(directory.stderr.contains("- for standard output") && directory.stderr.split(separator: "\n").count == 1)
    }

    /// A pod deleted while `node` runs leaves a namespace it cannot enter; `stillExists` tells that apart from a
    /// namespace that is there and could not be read (only the second is reported).
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func aNamespaceDeletedSinceDiscoveryNoLongerExists() throws {
        let name = "iptaudit-gone-\(getpid())"
        _ = try runCommand(["ip", "netns", "add", name])
        defer { _ = try? runCommand(["ip", "netns", "delete", name]) }
        let found = try #require(NodeNamespaces.discover().namespaces.first { $0.boundNames.contains(name) })
        #expect(found.stillExists)
        #expect(try runCommand(["ip", "netns", "delete", name]).status == 0)
        #expect(!found.stillExists)
    }

    @Test func badOptionsAreUsageErrors() throws {
        #expect(try Binary.run(["node", "--jobs", "0"]).status == 64)
        #expect(try Binary.run(["node", "--timeout", "-1"]).status == 64)
        let zero = try Binary.run(["node", "--timeout", "0"])
        #expect(zero.status == 64 && zero.stderr.contains("--timeout must be more than 0 and at most 3600 seconds, got 0.0"), "\(zero.stderr)")
        #expect(try Binary.run(["node", "--interval", "5s"]).status == 64)
        #expect(try Binary.run(["node", "-o", "sarif"]).status == 64)
        let badList = try Binary.run(["node", "--pods", "-"], stdin: "kind: List\nitems: [1, 2\n")
        #expect(badList.status == 2 && badList.stderr.hasPrefix("iptaudit: -:"), "\(badList.stderr)")
    }
}
