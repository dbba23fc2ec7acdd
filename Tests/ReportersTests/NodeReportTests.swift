import CaptureVerifier
import Foundation
import IstioCapture
import NetfilterModel
import Reporters
import Testing
import TestSupport

/// `iptaudit node`'s four renderings of one audit value: the classification, the table, JSON against its schema
/// (which embeds verify's), JUnit read by junitparser, and the Prometheus exposition parsed back.
@Suite struct NodeReportTests {
    /// A node of five namespaces: a healthy sidecar, a broken one, an ambient pod, an unmeshed one and one that
    /// could not be read; names with characters the exposition format must escape.
    static func audit() throws -> NodeAudit {
        let (healthy, healthyRules) = try VerificationReportTests.example("healthy")
        let (broken, brokenRules) = try VerificationReportTests.example("broken")
        let (ambient, ambientRules) = try VerificationReportTests.example("ambient")
        func pod(_ inode: UInt64, _ name: String?, _ mode: PodMeshMode, _ report: VerificationReport?, _ rules: Ruleset?) -> PodAudit {
            var p = PodAudit(netns: "/proc/\(inode)/ns/net", inode: inode)
            p.pid = Int32(inode)
            p.podNamespace = name == nil ? nil : "shop"
            p.podName = name
            p.podIPs = ["10.1.0.\(inode)"]
            p.mode = mode
            p.report = report
            p.ruleset = rules
            p.source = "network namespace /proc/\(inode)/ns/net, backend auto"
            return p
        }
        var unreadable = pod(5, nil, .unknown, nil, nil)
        unreadable.failure = "cannot enter network namespace /proc/5/ns/net: gone"
        return NodeAudit(pods: [pod(1, "web \"a\"\\1", .sidecar, healthy, healthyRules), pod(2, "cart", .sidecar, broken, brokenRules),
                                pod(3, "ztunnel-pod", .ambient, ambient, ambientRules), pod(4, "db", .notMeshed, nil, nil), unreadable],
                         unreadable: [("/run/netns/stale", "No such file or directory")], seconds: 0.25)
    }

    @Test func classificationFollowsTheRulesThenTheEvidence() {
        #expect(PodAudit.classify(rules: .sidecar, evidence: .none) == .sidecar)
        #expect(PodAudit.classify(rules: .ambient, evidence: .sidecar("proxy")) == .ambient)
        #expect(PodAudit.classify(rules: .none, evidence: .none) == .notMeshed)
        #expect(PodAudit.classify(rules: .none, evidence: .sidecar("istio-proxy process 7 (pilot-agent)")) == .meshedNoRules)
        #expect(PodAudit.classify(rules: .none, evidence: .ambient("annotation")) == .meshedNoRules)
    }

    @Test func verdictsAndExit() throws {
        let a = try Self.audit()
        #expect(a.pods.map(\.verdict) == [.proven, .failed, .proven, .notMeshed, .error])
        #expect(a.hasError)
        #expect(a.unreadableCount == 2)
    }

    /// BACKEND names the stores holding rules, not the store each family was read from: a legacy pod whose IPv6
    /// family (no rules anywhere) was read from nf_tables is `legacy`; a family in both is a split.
    @Test func theBackendColumnNamesTheStoresHoldingRules() throws {
        func column(_ populated: [Family: [Backend]]) -> String {
            var p = PodAudit(netns: "/proc/9/ns/net", inode: 9)
            p.mode = .sidecar
            p.ruleset = Ruleset(backends: [.ipv4: .legacy, .ipv6: .nft], populatedBackends: populated)
            let line = NodeText.render(NodeAudit(pods: [p], unreadable: [], seconds: 0)).split(separator: "\n")[1]
            return String(line.split(separator: " ", omittingEmptySubsequences: true)[2...].prefix { $0 != "error" }.joined(separator: " "))
        }
        #expect(column([.ipv4: [.legacy], .ipv6: []]) == "legacy")
        #expect(column([.ipv4: [.nft]]) == "nft")
        #expect(column([.ipv4: [.legacy, .nft], .ipv6: [.nft]]) == "legacy+nft (split)")
        #expect(column([.ipv4: [.legacy], .ipv6: [.nft]]) == "legacy+nft")
        #expect(column([.ipv4: [], .ipv6: []]) == "-")
    }

    @Test func tableHasOneLinePerPodAndTheFirstFinding() throws {
        let text = NodeText.render(try Self.audit())
        let lines = text.split(separator: "\n")
        #expect(lines.count == 1 + 5 + 1 + 1)
        #expect(lines[2].hasPrefix("shop/cart") && lines[2].contains(" failed ") && lines[2].contains("foreign-rule: "))
        #expect(lines[4].contains("not-meshed") && lines[4].hasSuffix("  -"))
        #expect(lines[5].contains("cannot enter network namespace"))
        #expect(lines.last == "5 namespaces: 2 sidecar, 1 ambient, 1 not-meshed, 0 meshed-no-rules, 1 unknown; 1 failed, 2 not judged; 0.250 s")
    }

    @Test func jsonMatchesItsSchemaAndCarriesVerifysDocument() throws {
        let audit = try Self.audit()
        let json = NodeJSON.render(audit)
        let file = try VerificationReportTests.temp(json, "json")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let docs = VerificationReportTests.repo.appendingPathComponent("docs").path
        let script = """
            import json, sys, warnings, jsonschema
            load = lambda n: json.load(open(sys.argv[2] + "/" + n))
            node, verify = load("node-report.schema.json"), load("verify-report.schema.json")
            try:
                import referencing
                registry = referencing.Registry().with_resources([(s["$id"], referencing.Resource.from_contents(s)) for s in (node, verify)])
                validator = jsonschema.Draft202012Validator(node, registry=registry)
            except ImportError:
                warnings.simplefilter("ignore")
                resolver = jsonschema.RefResolver.from_schema(node, store={verify["$id"]: verify})
                validator = jsonschema.Draft202012Validator(node, resolver=resolver)
            validator.validate(json.load(open(sys.argv[1])))
            doc = json.load(open(sys.argv[1]))
            doc["pods"][1]["verification"]["ok"] = "yes"
            try:
                validator.validate(doc)
                print("embedded document not checked")
            except jsonschema.ValidationError:
                print("valid")
            """
        let r = try VerificationReportTests.python(script, [file, docs])
        #expect(r.status == 0 && r.stdout.contains("valid"), "\(r.stdout)\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let pods = try #require(doc["pods"] as? [[String: Any]])
        let (broken, brokenRules) = try VerificationReportTests.example("broken")
        let alone = try JSONSerialization.jsonObject(with: Data(VerificationJSON.render(broken, ruleset: brokenRules,
            source: "network namespace /proc/2/ns/net, backend auto").utf8)) as? [String: Any]
        let canonical = { (v: Any) in try JSONSerialization.data(withJSONObject: v, options: [.sortedKeys]) }
        #expect(try canonical(try #require(pods[1]["verification"])) == canonical(try #require(alone)))
        #expect(pods[3]["verification"] == nil && pods[3]["verdict"] as? String == "not-meshed")
        #expect(doc["ok"] as? Bool == false)
    }

    @Test func junitHasOneSuitePerPod() throws {
        let file = try VerificationReportTests.temp(NodeJUnit.render(try Self.audit()), "xml")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let script = """
            import sys, junitparser
            xml = junitparser.JUnitXml.fromfile(sys.argv[1])
            for s in xml:
                kinds = [type(r).__name__ for c in s for r in c.result]
                print(s.name, s.tests, kinds.count("Failure"), kinds.count("Error"), kinds.count("Skipped"), sep="|")
            """
        let r = try VerificationReportTests.python(script, [file])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = r.stdout.split(separator: "\n").map { $0.split(separator: "|").map(String.init) }
        #expect(rows.count == 5)
        #expect(rows.map { $0[0] } == ["iptaudit node: shop/web \"a\"\\1 [sidecar]", "iptaudit node: shop/cart [sidecar]",
                                       "iptaudit node: shop/ztunnel-pod [ambient]", "iptaudit node: shop/db [not-meshed]",
                                       "iptaudit node: /proc/5/ns/net [unknown]"])
        #expect(Int(rows[1][2])! > 0)
        #expect(rows[3][4] == "1" && rows[4][3] == "1")
    }

    @Test func metricsParseBackWithEscapedLabels() throws {
        let text = NodeMetrics.render(try Self.audit())
        // A small reader of the exposition format: `name{k="v",...} value`, with \\, \" and \n escapes.
        var samples: [(String, [String: String], Double)] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            var s = Substring(line)
            let name = String(s.prefix { $0 != "{" && $0 != " " })
            s = s.dropFirst(name.count)
            var labels: [String: String] = [:]
            if s.first == "{" {
                s = s.dropFirst()
                while s.first != "}" {
                    let key = String(s.prefix { $0 != "=" })
                    s = s.dropFirst(key.count + 2)
                    var value = ""
                    while let c = s.first, c != "\"" {
                        s = s.dropFirst()
                        if c == "\\" { let e = s.removeFirst(); value.append(e == "n" ? "\n" : e) } else { value.append(c) }
                    }
                    s = s.dropFirst()
                    if s.first == "," { s = s.dropFirst() }
                    labels[key] = value
                }
                s = s.dropFirst()
            }
            samples.append((name, labels, try #require(Double(s.trimmingCharacters(in: .whitespaces)))))
        }
        let ok = samples.filter { $0.0 == "iptaudit_pod_capture_ok" }
        #expect(ok.map { $0.1["pod"] ?? "?" } == ["web \"a\"\\1", "cart", "ztunnel-pod", ""], "not-meshed pods have none")
        #expect(ok.map(\.2) == [1, 0, 1, 0])
        let findings = samples.filter { $0.0 == "iptaudit_pod_findings" && $0.1["pod"] == "cart" && $0.1["severity"] == "error" }
        #expect(Set(findings.compactMap { $0.1["kind"] }) == ["foreign-rule", "owner-match-gap"])
        #expect(samples.first { $0.0 == "iptaudit_pods" && $0.1["mode"] == "not-meshed" }?.2 == 1)
        #expect(samples.first { $0.0 == "iptaudit_namespaces_unreadable" }?.2 == 2)
        #expect(samples.first { $0.0 == "iptaudit_audit_duration_seconds" }?.2 == 0.25)
        #expect(samples.first { $0.0 == "iptaudit_audit_ok" }?.2 == 0)
        // Each family's HELP and TYPE come once, before its samples.
        #expect(text.components(separatedBy: "# TYPE iptaudit_pod_findings gauge").count == 2)
    }
}
