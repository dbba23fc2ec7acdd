import Foundation
import NetfilterModel
@testable import RuleReaders
import Testing
import TestSupport

/// The capture bundle's file format: round trip, refusal of other versions and broken files, and what it holds.
@Suite("CaptureBundle")
struct BundleTests {
    static let inputs = [Fixtures.url("extensions/ipv4.save").path, Fixtures.url("extensions/ipv6.save").path]

    /// A bundle of the extension fixtures (every match and target the model decodes), with every optional field set.
    static func sample() throws -> CaptureBundle {
        var bundle = try CaptureBundle.capture(from: .text(inputs: inputs, family: nil), toolVersion: "0.1.0",
                                               podManifest: .init(fileName: "pod.yaml", text: "kind: Pod\n"))
        bundle.policyRouting = PolicyRouting(
            rules: [.init(family: .ipv4, priority: 100, table: "main", inverted: true, source: "10.0.0.0/8", destination: "10.1.0.0/16",
                          inputInterface: "lo", outputInterface: "eth0", suppressPrefixLength: 0),
                    PolicyRouting.RoutingRule(family: .ipv4, priority: 101, table: "")
                        .with(action: .goto, gotoTarget: 32766, ipProtocol: 17, otherSelectors: ["tos 0x10", "suppress_ifgroup 3"]),
                    .init(family: .ipv4, priority: 32765, fwmark: 0x539, fwmask: 0xffff_ffff, table: "133")],
            routes: [.init(family: .ipv4, type: "local", destination: "default", device: "lo", table: "133")],
            routeTablesRead: [.ipv4: ["133", "main"], .ipv6: []])
        var runtime = RuntimeInputs()
        runtime.nameservers = ["10.96.0.10", "fd00::a"]
        runtime.hasGlobalIPv6 = true
        bundle.runtime = runtime
        bundle.networkNamespaceInode = 4_026_531_840
        return bundle
    }

    static func json(_ bundle: CaptureBundle) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: bundle.encoded()) as? [String: Any])
    }

    static func decodeError(_ data: Data) -> RuleReaderError? {
        do {
            _ = try CaptureBundle.decode(data, file: "b.json")
            return nil
        } catch {
            return error
        }
    }

    @Test func roundTripsEveryField() throws {
        let bundle = try Self.sample()
        let decoded = try CaptureBundle.decode(bundle.encoded(), file: "b.json")
        #expect(decoded == bundle)
        #expect(decoded.encoded() == bundle.encoded())
    }

    @Test func readsBackTheTablesOfTheSource() throws {
        let dir = try TemporaryDirectory()
        let sample = try Self.sample()
        let path = try dir.write("b.json", String(decoding: sample.encoded(), as: UTF8.self))
        let text = try TextRulesetReader(inputs: Self.inputs).read(ReadRequest())
        let reader = BundleRulesetReader(path: path)
        #expect(reader.sourceDescription == "bundle \(path) (files \(Self.inputs.joined(separator: ", "))\(sample.hostname.map { " on \($0)" } ?? ""), captured \(sample.capturedAt))")
        #expect(BundleRulesetReader(path: path + ".none").sourceDescription == "bundle \(path).none")
        var fromBundle = try reader.read(ReadRequest())
        #expect(fromBundle.policyRouting?.routes.first?.table == "133")
        fromBundle.policyRouting = nil
        // The tables holding rules, per backend, which a live read also records (a split's severity needs them).
        #expect(fromBundle.populatedTables.mapValues { $0.mapValues { Set($0.map(\.name)) } }
                == text.tables.reduce(into: [:]) { $0[$1.family, default: [:]][.text, default: []].formUnion($1.ruleCount > 0 ? [$1.name] : []) })
        fromBundle.populatedTables = [:]
        #expect(fromBundle == text)
        // Counters survive the save text.
        let counted = try #require(try SaveTextParser(fileName: "x").parse(Fixtures.text("extensions/ipv4.save")).first)
        #expect(fromBundle.table(counted.name, family: .ipv4) == counted)
        // A request narrows as on any reader.
        let nat = try reader.read(ReadRequest(tables: [.nat], families: [.ipv6]))
        #expect(nat.tables.map { "\($0.family) \($0.name)" } == ["ipv6 nat"])
        #expect(nat.backends == [.ipv6: .text])
    }

    @Test func writesSortedVersionedJSON() throws {
        let bundle = try Self.sample()
        let doc = try Self.json(bundle)
        #expect(doc["schemaVersion"] as? Int == 1)
        #expect(doc["kind"] as? String == "iptaudit-capture-bundle")
        #expect((doc["tool"] as? [String: Any])?["version"] as? String == "0.1.0")
        let rules = try #require(doc["rules"] as? [[String: Any]])
        #expect(rules.map { "\($0["backend"] ?? "") \($0["family"] ?? "")" } == ["text ipv4", "text ipv6"])
        // Top-level keys in sorted order: two captures of the same tables diff line by line.
        let text = String(decoding: bundle.encoded(), as: UTF8.self)
        let topKeys = text.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map { $0.split(separator: "\"")[1] }
        #expect(topKeys == topKeys.sorted())
        #expect(topKeys.count == doc.count)
    }

    @Test func refusesAnotherSchemaVersion() throws {
        var doc = try Self.json(try Self.sample())
        doc["schemaVersion"] = 7
        let error = Self.decodeError(try JSONSerialization.data(withJSONObject: doc))
        #expect(error == .unreadableInput(file: "b.json", reason: "unsupported schemaVersion 7, expected 1"))
        #expect(error?.description == "b.json: unsupported schemaVersion 7, expected 1")
    }

    @Test(arguments: [
        ("truncated", "not JSON (truncated or not an iptaudit bundle)"),
        ("garbage", "not JSON (truncated or not an iptaudit bundle)"),
        ("empty", "not JSON (truncated or not an iptaudit bundle)"),
        ("other JSON", "not an iptaudit bundle: no numeric schemaVersion"),
        ("string version", "not an iptaudit bundle: no numeric schemaVersion"),
        ("other kind", "not an iptaudit bundle: kind is 'something-else', expected 'iptaudit-capture-bundle'"),
    ])
    func refusesBrokenFiles(_ damage: String, _ reason: String) throws {
        let good = try Self.sample().encoded()
        var doc = try Self.json(try Self.sample())
        let data: Data
        switch damage {
        case "truncated": data = good.prefix(good.count / 2)
        case "garbage": data = Data([0x7f, 0x45, 0x4c, 0x46, 0x00, 0xff, 0x10])
        case "empty": data = Data()
        case "other JSON": data = Data(#"{"apiVersion": "v1", "kind": "Pod"}"#.utf8)
        case "string version":
            doc["schemaVersion"] = "1"
            data = try JSONSerialization.data(withJSONObject: doc)
        default:
            doc["kind"] = "something-else"
            data = try JSONSerialization.data(withJSONObject: doc)
        }
        #expect(Self.decodeError(data) == .unreadableInput(file: "b.json", reason: reason))
    }

    @Test func namesAMissingOrMistypedField() throws {
        var doc = try Self.json(try Self.sample())
        var rules = try #require(doc["rules"] as? [[String: Any]])
        rules[1]["saveText"] = nil
        doc["rules"] = rules
        let missing = Self.decodeError(try JSONSerialization.data(withJSONObject: doc))
        #expect(missing == .unreadableInput(file: "b.json", reason: "invalid bundle: missing field rules[1].saveText"))

        rules[1]["saveText"] = ""
        rules[1]["family"] = "ipv5"
        doc["rules"] = rules
        let mistyped = try #require(Self.decodeError(try JSONSerialization.data(withJSONObject: doc)))
        #expect(mistyped.description.hasPrefix("b.json: invalid bundle: rules[1].family: "), "\(mistyped)")
    }

    /// A number its field cannot hold is valid JSON, which the decoder reports as "not valid JSON": say what it is.
    @Test(arguments: [-1, 1.5, 1e30] as [Double])
    func aNumberThatDoesNotFitIsNamedAsSuch(_ inode: Double) throws {
        var doc = try Self.json(try Self.sample())
        doc["networkNamespaceInode"] = inode
        let error = try #require(Self.decodeError(try JSONSerialization.data(withJSONObject: doc)))
        #expect(error == .unreadableInput(file: "b.json", reason: "invalid bundle: a value cannot be decoded (a number that does not "
            + "fit its field, such as a negative, fractional or too large whole number, or a string with an invalid escape)"), "\(error)")
    }

    @Test func refusesBrokenRulesWithTheDumpNamed() throws {
        var bundle = try Self.sample()
        bundle.rules[1].saveText = "*nat\n-A OUTPUT -p tcp --dport\nCOMMIT\n"
        let error = try #require(Self.decodeError(bundle.encoded()))
        guard case .malformed(let file, let line, _) = error else {
            Issue.record("expected a malformed-rules error, got \(error)")
            return
        }
        #expect(file == "b.json [text ipv6]")
        #expect(line == 2)
    }

    @Test func refusesAFamilyWithoutItsDump() throws {
        var bundle = try Self.sample()
        bundle.rules.removeAll { $0.family == .ipv6 }
        #expect(Self.decodeError(bundle.encoded())
            == .unreadableInput(file: "b.json", reason: "families[1].chosenBackend: ipv6 names backend text, but rules holds no such dump"))
    }

    @Test func refusesANativeTableRecordedTwice() throws {
        var bundle = try Self.sample()
        bundle.nativeNftables = [NftTable(family: .inet, name: "istio-proxy-nat"), NftTable(family: .ip, name: "istio-proxy-nat")]
        #expect(Self.decodeError(bundle.encoded()) == nil, "the same name in two families is two tables")
        bundle.nativeNftables.append(NftTable(family: .inet, name: "istio-proxy-nat", handle: 9))
        #expect(Self.decodeError(bundle.encoded())
            == .unreadableInput(file: "b.json", reason: "nativeNftables[2]: table inet istio-proxy-nat is recorded twice "
                + "(the first is nativeNftables[0]); nftables names a table once per family"))
    }

    @Test func aForcedBackendTheBundleLacksIsUnavailable() throws {
        let bundle = try Self.sample()
        #expect(throws: RuleReaderError.self) { try bundle.ruleset(ReadRequest(), backend: .nft, file: "b.json") }
        do {
            _ = try bundle.ruleset(ReadRequest(), backend: .legacy, file: "b.json")
        } catch {
            #expect(error.description.contains("b.json holds no legacy tables for ipv4"), "\(error)")
        }
    }

    @Test func missingFileAndDirectoryAreUnreadable() throws {
        let dir = try TemporaryDirectory()
        #expect(throws: RuleReaderError.unreadableInput(file: dir.url.path + "/none.json", reason: "no such file")) {
            try BundleRulesetReader(path: dir.url.path + "/none.json").read(ReadRequest())
        }
        #expect(throws: RuleReaderError.unreadableInput(file: dir.url.path, reason: "is a directory, not a bundle")) {
            try BundleRulesetReader(path: dir.url.path).read(ReadRequest())
        }
    }
}
