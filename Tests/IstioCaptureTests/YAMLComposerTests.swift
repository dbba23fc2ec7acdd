import IstioCapture
import Testing
import NetfilterModel

@Suite struct YAMLComposerTests {
    static func value(_ yaml: String) throws -> YAMLNode {
        let documents = try YAMLComposer().composeAll("v: \(yaml)\n")
        return try #require(documents.first?["v"])
    }

    /// YAML 1.1 implicit typing as Kubernetes' reader (go-yaml v2) applies it; quoting or a block makes a string.
    @Test(arguments: [
        ("1337", .int(1337)), ("\"1337\"", .string("1337")), ("'1337'", .string("1337")), ("|-\n  1337", .string("1337")),
        ("-42", .int(-42)), ("+7", .int(7)), ("0", .int(0)), ("1_000", .int(1000)),
        ("0x539", .int(1337)), ("0X1f", .int(31)), ("0o17", .int(15)), ("017", .int(15)), ("0b101", .int(5)),
        ("-0x10", .int(-16)), ("08", .float(8)), ("9223372036854775807", .int(.max)), ("-9223372036854775808", .int(.min)),
        ("1.5", .float(1.5)), ("1e3", .float(1000)), ("-.5", .float(-0.5)), ("5.", .float(5)), (".inf", .float(.infinity)),
        ("-.Inf", .float(-.infinity)),
        ("true", .bool(true)), ("True", .bool(true)), ("TRUE", .bool(true)), ("yes", .bool(true)), ("Yes", .bool(true)),
        ("on", .bool(true)), ("y", .bool(true)), ("false", .bool(false)), ("no", .bool(false)), ("NO", .bool(false)),
        ("off", .bool(false)), ("n", .bool(false)), ("\"true\"", .string("true")), ("'no'", .string("no")), ("tRUE", .string("tRUE")),
        ("null", .null), ("Null", .null), ("~", .null), ("", .null), ("\"\"", .string("")), ("'null'", .string("null")),
        ("!!str 1337", .string("1337")), ("!!int \"1337\"", .int(1337)), ("!!bool \"yes\"", .bool(true)),
        ("!!float 3", .float(3)), ("! 1337", .string("1337")), ("!custom 1337", .string("1337")),
        ("0x", .string("0x")), ("1.2.3", .string("1.2.3")), ("10.0.0.1", .string("10.0.0.1")), ("15020,15021", .string("15020,15021")),
        ("1337abc", .string("1337abc")), ("2026-11-29", .string("2026-11-29")), ("e3", .string("e3")), (".", .string(".")),
    ] as [(String, YAMLNode.Resolved)])
    func scalarResolution(_ yaml: String, _ expected: YAMLNode.Resolved) throws {
        #expect(try Self.value(yaml).resolved == expected)
    }

    @Test func nanResolvesToNaN() throws {
        guard case .float(let f) = try Self.value(".nan").resolved else { Issue.record("not a float"); return }
        #expect(f.isNaN)
    }

    /// The text is kept as written whatever it resolves to, which is what the manifest reader uses.
    @Test func textAndStyleAreKept() throws {
        let plain = try Self.value("1337"), quoted = try Self.value("\"1337\"")
        #expect(plain.text == "1337" && quoted.text == "1337")
        #expect(plain.content == .scalar("1337", style: .plain) && quoted.content == .scalar("1337", style: .doubleQuoted))
        #expect(try Self.value("!!str 1337").tag == "tag:yaml.org,2002:str")
        #expect(try Self.value("|\n  a\n  b").text == "a\nb\n")
        #expect(try Self.value(">-\n  a\n  b").text == "a b")
        #expect(try Self.value("\"caf\\u00e9\\t\"").text == "café\t")
    }

    @Test func mappingsKeepOrderAndLookUpByKeyText() throws {
        let doc = try #require(try YAMLComposer().composeAll("b: 1\na: [x, {c: d}]\n\"q\": 2\n").first)
        #expect(doc.mapping?.map(\.key.text) == ["b", "a", "q"])
        #expect(doc["a"]?.sequence?.count == 2)
        #expect(doc["a"]?.sequence?[1]["c"]?.text == "d")
        #expect(doc["q"]?.text == "2")
        #expect(doc["missing"] == nil)
        #expect(doc["a"]?["c"] == nil)
        #expect(doc.line == 1 && doc["a"]?.line == 2 && doc["a"]?.column == 4)
    }

    @Test func anchorsAndAliases() throws {
        let yaml = """
            env: &env
              - {name: A, value: "1"}
            name: &n web
            c1: {env: *env, name: *n}
            c2: {env: *env}
            """
        let doc = try #require(try YAMLComposer().composeAll(yaml).first)
        #expect(doc["c1"]?["env"] == doc["env"])
        #expect(doc["c2"]?["env"]?.sequence?.first?["value"]?.text == "1")
        #expect(doc["c1"]?["name"]?.text == "web")
    }

    @Test func undefinedAliasNamesItsPlace() {
        #expect(throws: YAMLError(line: 2, column: 4, message: "alias *nope names no anchor before it in this document")) {
            try YAMLComposer().composeAll("a: 1\nb: *nope\n")
        }
        // Anchors do not reach into the next document.
        #expect(throws: YAMLError.self) { try YAMLComposer().composeAll("a: &x 1\n---\nb: *x\n") }
    }

    @Test func multiDocumentStreams() throws {
        let docs = try YAMLComposer().composeAll("# only a comment\n---\na: 1\n---\nb: 2\n...\n---\n- x\n")
        #expect(docs.count == 3)
        #expect(docs[0]["a"]?.text == "1" && docs[1]["b"]?.text == "2" && docs[2].sequence?.first?.text == "x")
        #expect(try YAMLComposer().composeAll("").isEmpty)
        #expect(try YAMLComposer().composeAll("# nothing\n").isEmpty)
    }

    @Test func jsonIsYAML() throws {
        let doc = try #require(try YAMLComposer().composeAll(#"{"kind": "Pod", "n": 1, "s": "1", "a": [true, null]}"#).first)
        #expect(doc["n"]?.resolved == .int(1) && doc["s"]?.resolved == .string("1"))
        #expect(doc["a"]?.sequence?.map(\.resolved) == [.bool(true), .null])
    }

    @Test func duplicateKeyIsAnErrorWithItsLine() {
        let yaml = "kind: Pod\nmetadata:\n  name: a\n  labels: {}\n  name: b\n"
        #expect(throws: YAMLError(line: 5, column: 3, message: "duplicate key \"name\" in a mapping (first at line 3)")) {
            try YAMLComposer().composeAll(yaml)
        }
        #expect(throws: IstioCaptureError.invalidManifest("line 5, column 3: duplicate key \"name\" in a mapping (first at line 3)")) {
            try PodManifest.all(yaml: yaml)
        }
        // The same key in two mappings is fine.
        #expect(throws: Never.self) { try YAMLComposer().composeAll("a: {k: 1}\nb: {k: 2}\n") }
    }

    @Test func syntaxErrorsCarryLineAndColumn() {
        let bad = "kind: Pod\nspec:\n  containers:\n  - name: a\n   image: b\n"
        #expect(throws: YAMLError(line: 5, column: 4,
                                  message: "did not find expected key while parsing a block mapping at line 3, column 3")) {
            try YAMLComposer().composeAll(bad)
        }
        #expect(throws: IstioCaptureError.self) { try PodManifest(yaml: "{ not yaml: [") }
    }

    /// Deep nesting is refused at the limit, never by running out of stack (Yams crashed at 5,000 levels).
    @Test(arguments: [5_000, 100_000])
    func deepNestingIsRefused(_ levels: Int) {
        let flowSequences = String(repeating: "[", count: levels) + String(repeating: "]", count: levels)
        let flowMappings = String(repeating: "{a: ", count: levels) + "x" + String(repeating: "}", count: levels)
        let blockSequences = String(repeating: "- ", count: levels) + "x\n"
        for text in [flowSequences, flowMappings, blockSequences] {
            #expect(throws: YAMLError.self) { try YAMLComposer().composeAll(text) }
            do {
                _ = try YAMLComposer().composeAll(text)
            } catch {
                #expect(error.message.hasPrefix("nested more than 256 levels deep"))
                #expect(error.message.contains("IPTAUDIT_MAX_NESTING"))
                #expect(error.line == 1)
            }
        }
        #expect(throws: IstioCaptureError.self) { try PodManifest.all(yaml: "spec: " + flowMappings) }
    }

    @Test func nestingAtTheLimitIsAccepted() throws {
        let text = String(repeating: "[", count: 256) + String(repeating: "]", count: 256)
        #expect(try YAMLComposer().composeAll(text).count == 1)
        #expect(throws: YAMLError.self) { try YAMLComposer().composeAll("[" + text + "]") }
    }

    @Test func aliasesCannotDeepenPastTheLimit() {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        let yaml = "a: &d \(deep)\nb: \(String(repeating: "[", count: 100))*d\(String(repeating: "]", count: 100))\n"
        #expect(throws: YAMLError(line: 2, column: 104, message: "alias expands to more than 256 levels of nesting")) {
            try YAMLComposer().composeAll(yaml)
        }
    }

    /// The "billion laughs": each level repeats the one before ten times.
    @Test func aliasExpansionIsBounded() {
        var yaml = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 { yaml += "l\(i): &l\(i) [" + Array(repeating: "*l\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        #expect(throws: YAMLError.self) { try YAMLComposer().composeAll(yaml) }
        do {
            _ = try YAMLComposer().composeAll(yaml)
        } catch {
            #expect(error.message == "more than 1000000 nodes once aliases are expanded")
        }
        #expect(throws: YAMLError.self) { try YAMLComposer(maxNodes: 50).composeAll("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: [*a, *a, *a, *a, *a]\n") }
    }

    @Test func oversizedManifestIsRefusedBeforeParsing() {
        let limit = InputLimits.current.manifestBytes
        let big = String(repeating: "#", count: limit + 1)
        #expect(throws: IstioCaptureError.invalidManifest(
            InputLimits.exceeded("\(limit + 1) bytes", limit: limit, variable: "IPTAUDIT_MAX_MANIFEST_BYTES"))) {
            try PodManifest.all(yaml: big)
        }
    }
}
