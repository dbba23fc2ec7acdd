import Foundation
import Testing
import TestSupport

/// A wrongly typed or inconsistent input is exit 2 naming the field, never a silent default (issue 10).
@Suite struct StrictDecodingTests {
    static let pod = (try? String(contentsOf: HostileInput.pod, encoding: .utf8)) ?? ""

    /// examples/pod.yaml with `old` replaced by `new` (each case changes one field).
    static func edited(_ old: String, _ new: String) throws -> String {
        #expect(pod.contains(old), "examples/pod.yaml no longer holds \(old)")
        return pod.replacingOccurrences(of: old, with: new)
    }

    @Test(arguments: [
        ("      containers:\n", "      securityContext:\n        runAsUser: [1, 2]\n      containers:\n",
         "spec.template.spec.securityContext.runAsUser: expected a numeric id, found a list"),
        ("      - args:\n        - istio-iptables\n", "      - args:\n        - [istio-iptables]\n",
         "spec.template.spec.initContainers[0].args[0]: expected a string, found a list"),
        ("      - args:\n        - istio-iptables\n", "      - args: istio-iptables\n        x:\n        - istio-iptables\n",
         "spec.template.spec.initContainers[0].args: expected a list"),
        ("        istio.io/rev: default\n", "        istio.io/rev: [default]\n",
         "spec.template.metadata.annotations.istio.io/rev: expected a string, found a list"),
        ("      annotations:\n", "      annotations: [a, b]\n      x:\n", "spec.template.metadata.annotations: expected a mapping of strings"),
        ("        istio.io/rev: default\n", "        istio.io/rev: default\n        istio.io/rev: canary\n",
         "duplicate key \"istio.io/rev\""),
    ])
    func aWronglyTypedOrDuplicatedManifestFieldIsNamed(old: String, new: String, message: String) throws {
        let file = try TemporaryFile("pod.yaml", contents: try Self.edited(old, new))
        let r = try runBounded(["expect", "--pod", file.path], seconds: 60)
        expectOneLineError(r, containing: [file.path, "line ", message])
    }

    /// A bundle captured from examples/healthy.save, its JSON edited by `edit`, then read by `verify --bundle`.
    static func verifyEditedBundle(_ edit: (inout [String: Any]) throws -> Void) throws -> (CommandResult, String) {
        let dir = try TemporaryFile("pod.yaml", contents: pod)
        let bundle = dir.directory.appendingPathComponent("bundle.json").path
        let captured = try runBounded(["capture", "--input", HostileInput.healthy.path, "-w", bundle])
        #expect(captured.status == 0, "\(captured.stderr)")
        var json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: bundle))) as? [String: Any])
        try edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: bundle))
        return (try runBounded(["verify", "--bundle", bundle, "--pod", dir.path], seconds: 60), bundle)
    }

    @Test func anUneditedBundleVerifies() throws {
        let (r, _) = try Self.verifyEditedBundle { _ in }
        #expect(r.status == 0, "\(r.stderr)")
    }

    @Test func aChosenBackendWithoutItsDumpIsNamed() throws {
        let (r, bundle) = try Self.verifyEditedBundle { json in
            var families = try #require(json["families"] as? [[String: Any]])
            families[0]["chosenBackend"] = "legacy"
            json["families"] = families
        }
        expectOneLineError(r, containing: [bundle, "families[0].chosenBackend", "no such dump"])
    }

    @Test func populatedBackendsThatDisagreeWithTheDumpsAreNamed() throws {
        let (listed, bundle) = try Self.verifyEditedBundle { json in
            var families = try #require(json["families"] as? [[String: Any]])
            families[0]["populatedBackends"] = ["text", "nft"]
            json["families"] = families
        }
        expectOneLineError(listed, containing: [bundle, "families[0].populatedBackends", "nft"])
        let (omitted, _) = try Self.verifyEditedBundle { json in
            var families = try #require(json["families"] as? [[String: Any]])
            families[0]["populatedBackends"] = [String]()
            json["families"] = families
        }
        expectOneLineError(omitted, containing: ["families[0].populatedBackends", "holds rules"])
    }

    @Test func aDuplicatedDumpIsNamed() throws {
        let (r, bundle) = try Self.verifyEditedBundle { json in
            let rules = try #require(json["rules"] as? [[String: Any]])
            json["rules"] = rules + [rules[0]]
        }
        expectOneLineError(r, containing: [bundle, "rules[\(1)]", "a second"])
    }
}
