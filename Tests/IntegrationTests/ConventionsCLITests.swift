import CaptureVerifier
import Foundation
import Testing
import TestSupport

/// Issue 12 items 1 and 2: the options kubectl and istioctl users type without thinking (`-o`, `yaml`, `--fail-on`,
/// `--color`, `checks`) and the CI formats with locations (file:line on findings, SARIF, GitHub annotations), each
/// through the built binary as a user runs it, and checked by real consumers (PyYAML, jsonschema) where one exists.
@Suite struct ConventionsCLITests {
    static let repo = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
    static let pod = repo.appendingPathComponent("examples/pod.yaml").path
    static let broken = "examples/broken.save"
    static let healthy = "examples/healthy.save"

    /// Runs the binary from the repository root, so relative `--input` paths are as a user in a checkout types them.
    static func run(_ args: [String], environment: [String: String]? = nil) throws -> CommandResult {
        try runCommand(["sh", "-c", "cd \"$0\" && exec \"$@\"", repo.path, Binary.path] + args, environment: environment)
    }

    static func python(_ script: String, _ args: [String] = [], stdin: String? = nil) throws -> CommandResult {
        try runCommand(["/usr/bin/python3", "-c", script] + args, stdin: stdin)
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    static func temp(_ text: String, _ ext: String) throws -> String {
        let path = NSTemporaryDirectory() + "iptaudit-conventions-\(UUID().uuidString).\(ext)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    // MARK: -o / --output / --format

    static let formatCommands: [[String]] = [
        ["verify", "--pod", pod, "--input", broken, "@", "json"],
        ["show", "--input", healthy, "@", "save"],
        ["trace", "out", "tcp", "10.0.0.1:5432", "--uid", "1000", "--input", broken, "@", "json"],
        ["expect", "--pod", pod, "@", "save"],
        ["checks", "@", "json"],
    ]

    @Test(arguments: formatCommands)
    func everyOutputSpellingGivesTheSameOutput(_ template: [String]) throws {
        var outputs: [String: CommandResult] = [:]
        for spelling in ["-o", "--output", "--format"] {
            outputs[spelling] = try Self.run(template.map { $0 == "@" ? spelling : $0 })
        }
        let equals = try Self.run(template.prefix(template.count - 2) + ["--output=" + template.last!])
        let reference = try #require(outputs["-o"])
        #expect([0, 1].contains(reference.status) && !reference.stdout.isEmpty, "\(template): \(reference.stderr)")
        for (spelling, r) in outputs.merging(["--output=": equals], uniquingKeysWith: { a, _ in a }) {
            #expect(r.status == reference.status && r.stdout == reference.stdout && r.stderr == reference.stderr, "\(template[0]) \(spelling)")
        }
    }

    @Test func captureWritesItsBundleWithW() throws {
        let bundle = NSTemporaryDirectory() + "iptaudit-conventions-\(UUID().uuidString).json"
        defer { unlink(bundle) }
        // The old spelling still writes the bundle, and says what to type instead.
        let old = try Self.run(["capture", "--input", Self.broken, "-o", bundle])
        #expect(old.status == 0 && old.stdout.isEmpty && FileManager.default.fileExists(atPath: bundle))
        #expect(old.stderr.split(separator: "\n").first == "iptaudit: capture -o FILE is now -w FILE (-w \(bundle)); -o is the other commands' output format", "\(old.stderr)")
        let both = try Self.run(["capture", "--input", Self.broken, "-o", bundle, "-w", bundle])
        #expect(both.status == 64 && both.stderr.contains("give the bundle's file once"))
        unlink(bundle)
        let written = try Self.run(["capture", "--input", Self.broken, "-w", bundle])
        #expect(written.status == 0 && written.stderr.hasPrefix("iptaudit: wrote \(bundle) ("), "\(written.stderr)")
        // The bundle verifies as the file it captured, finding for finding.
        let fromBundle = try Self.run(["verify", "--pod", Self.pod, "--bundle", bundle, "-o", "json"])
        let fromFile = try Self.run(["verify", "--pod", Self.pod, "--input", Self.broken, "-o", "json"])
        let kinds = { (r: CommandResult) in ((try Self.json(r.stdout)["findings"] as? [[String: Any]]) ?? []).map { "\($0["kind"]!) \($0["chain"] ?? "")" } }
        let bundleKinds = try kinds(fromBundle), fileKinds = try kinds(fromFile)
        #expect(fromBundle.status == 1 && bundleKinds == fileKinds && !fileKinds.isEmpty)
    }

    // MARK: yaml

    static let yamlCommands: [[String]] = [
        ["verify", "--pod", pod, "--input", broken],
        ["verify", "--pod", pod, "--input", healthy],
        ["show", "--input", healthy],
        ["trace", "out", "udp", "10.96.0.10:53", "--uid", "1000", "--input", healthy],
        ["checks"],
    ]

    /// PyYAML reads `-o yaml` as exactly the document json reads from `-o json`: every string stays a string
    /// (addresses, `0x0`, `yes`-like words), every number a number.
    @Test(arguments: yamlCommands)
    func yamlIsTheJSONDocument(_ command: [String]) throws {
        let json = try Self.run(command + ["-o", "json"])
        let yaml = try Self.run(command + ["-o", "yaml"])
        #expect(yaml.status == json.status && yaml.stderr == json.stderr, "\(command): \(yaml.stderr)")
        let jsonFile = try Self.temp(json.stdout, "json"), yamlFile = try Self.temp(yaml.stdout, "yaml")
        defer { unlink(jsonFile); unlink(yamlFile) }
        let r = try Self.python("""
            import json, sys, yaml
            j = json.load(open(sys.argv[1])); y = yaml.safe_load(open(sys.argv[2]))
            # Compared as text, so True never passes for 1 nor 1.0 for 1.
            if json.dumps(j, sort_keys=True) != json.dumps(y, sort_keys=True):
                for k in j:
                    if j.get(k) != y.get(k): print("differs at", k, repr(j.get(k))[:300], repr(y.get(k))[:300])
                sys.exit(1)
            print("equal", len(json.dumps(j)))
            """, [jsonFile, yamlFile])
        #expect(r.status == 0 && r.stdout.hasPrefix("equal"), "\(command): \(r.stdout) \(r.stderr)")
        #expect(!yaml.stdout.hasPrefix("{"), "block style, not JSON")
    }

    // MARK: --fail-on

    @Test func failOnSetsTheSeverityThatFails() throws {
        // The injector's rules read with `--redirect-dns false` (istio-iptables turns DNS capture ON): a warning only.
        let injector = "-p 15001 -z 15006 -u 1337 -m REDIRECT -i * -b * -d 15090,15021,15020"
        let rules = try Self.run(["expect", "--istio-args", injector, "--family", "ipv4"])
        try #require(rules.status == 0)
        let warningOnly = try Self.temp(rules.stdout, "save")
        defer { unlink(warningOnly) }
        let warned = ["verify", "--istio-args", injector + " --redirect-dns false", "--dns-servers", "", "--input", warningOnly]
        // A stray word in the arguments (istio-iptables ignores it): an info finding only.
        let noted = ["verify", "--istio-args", injector + " stray", "--dns-servers", "", "--input", warningOnly]
        let brokenArgs = ["verify", "--pod", Self.pod, "--input", Self.broken]
        let cases: [([String], [String], Int32)] = [
            (warned, [], 0), (warned, ["--fail-on", "error"], 0), (warned, ["--fail-on", "warning"], 1),
            (warned, ["--fail-on", "info"], 1), (warned, ["--fail-on", "never"], 0), (warned, ["--fail-on", "Warning"], 1),
            (noted, [], 0), (noted, ["--fail-on", "warning"], 0), (noted, ["--fail-on", "info"], 1),
            (brokenArgs, [], 1), (brokenArgs, ["--fail-on", "warning"], 1), (brokenArgs, ["--fail-on", "never"], 0),
            // Not a verdict: unreadable input is exit 2 whatever the threshold.
            (["verify", "--pod", Self.pod, "--input", "/nonexistent.save"], ["--fail-on", "never"], 2),
        ]
        for (command, option, status) in cases {
            let r = try Self.run(command + option + ["-o", "json"])
            #expect(r.status == status, "\(command.last!) \(option): \(r.status) \(r.stderr)")
            if status != 2 {
                // The report is the same whatever the threshold: only the exit status follows it.
                let plain = try Self.run(command + ["-o", "json"])
                #expect(plain.stdout == r.stdout)
            }
        }
        let bad = try Self.run(warned + ["--fail-on", "critical"])
        #expect(bad.status == 64 && bad.stderr.contains("critical"), "\(bad.stderr)")
    }

    // MARK: --color

    static let escape = "\u{1B}["

    @Test func colorFollowsTheFlagThenNoColorThenTheTerminal() throws {
        let report = ["verify", "--pod", Self.pod, "--input", Self.broken]
        // Piped: auto is plain; always colours, even with NO_COLOR (an explicit flag wins); never is plain.
        let piped: [([String], [String: String], Bool)] = [
            ([], [:], false), (["--color", "auto"], [:], false), (["--color", "always"], [:], true),
            (["--color", "always"], ["NO_COLOR": "1"], true), (["--color", "never"], [:], false),
        ]
        for (option, environment, coloured) in piped {
            let r = try Self.run(report + option, environment: environment)
            #expect(r.status == 1 && r.stdout.contains(Self.escape) == coloured, "\(option) \(environment)")
        }
        // On a terminal (script(1)'s pseudo-terminal): auto colours unless NO_COLOR is set; never stays plain.
        // An empty NO_COLOR counts as unset (no-color.org).
        let terminal: [([String], String, Bool)] = [([], "env -u NO_COLOR ", true), ([], "env NO_COLOR=1 ", false), ([], "env NO_COLOR= ", true),
                                                     (["--color", "never"], "env -u NO_COLOR ", false), (["--color", "always"], "env NO_COLOR=1 ", true)]
        for (option, prefix, coloured) in terminal {
            let command = "cd '\(Self.repo.path)' && \(prefix)'\(Binary.path)' " + (report + option).map { "'\($0)'" }.joined(separator: " ")
            let r = try runCommand(["script", "-qec", command, "/dev/null"])
            #expect(r.stdout.contains("Capture NOT proven"), "\(r.stdout.prefix(300)) \(r.stderr)")
            #expect(r.stdout.contains(Self.escape) == coloured, "terminal \(prefix)\(option)")
        }
        // The same text once the escapes are gone.
        let plain = try Self.run(report + ["--color", "never"]).stdout
        let coloured = try Self.run(report + ["--color", "always"]).stdout
        #expect(coloured.replacing(/\x1B\[[0-9;]*m/, with: "") == plain)
    }

    // MARK: checks

    @Test func checksListsEveryObligationAndKindWithItsDocs() throws {
        let text = try Self.run(["checks"])
        #expect(text.status == 0 && text.stderr.isEmpty)
        let doc = try Self.json(try Self.run(["checks", "-o", "json"]).stdout)
        let obligations = try #require(doc["obligations"] as? [[String: Any]])
        let kinds = try #require(doc["kinds"] as? [[String: Any]])
        let expectedIDs = (CaptureVerifier.obligationDescriptions + ObservationObligations.descriptions).map(\.id.rawValue)
        #expect(Set(obligations.compactMap { $0["id"] as? String }) == Set(expectedIDs) && obligations.count == expectedIDs.count)
        #expect(kinds.compactMap { $0["kind"] as? String } == FindingKind.all.map(\.rawValue))
        let findingsDoc = try String(contentsOf: Self.repo.appendingPathComponent("docs/findings.md"), encoding: .utf8)
        let modelDoc = try String(contentsOf: Self.repo.appendingPathComponent("docs/capture-model.md"), encoding: .utf8)
        for k in kinds {
            let kind = try #require(k["kind"] as? String)
            #expect(k["documentation"] as? String == "docs/findings.md#\(kind)")
            #expect(findingsDoc.contains("\n## \(kind)\n"), "docs/findings.md has no section for \(kind)")
            #expect((k["summary"] as? String)?.isEmpty == false)
            #expect(text.stdout.contains(kind) && text.stdout.contains("docs/findings.md#\(kind)"))
        }
        for o in obligations {
            let id = try #require(o["id"] as? String)
            #expect(o["documentation"] as? String == "docs/capture-model.md#obligation-\(id)")
            #expect(modelDoc.contains("<a id=\"obligation-\(id)\"></a>`\(id)`"), "docs/capture-model.md has no anchor for \(id)")
            #expect(text.stdout.contains(" \(id) ") && text.stdout.contains("docs/capture-model.md#obligation-\(id)"))
            #expect((o["kinds"] as? [String])?.isEmpty == false)
        }
        // Every finding in a report links to its kind's section.
        let report = try Self.json(try Self.run(["verify", "--pod", Self.pod, "--input", Self.broken, "-o", "json"]).stdout)
        for f in (report["findings"] as? [[String: Any]]) ?? [] {
            #expect(f["documentation"] as? String == "docs/findings.md#\(f["kind"] as? String ?? "?")")
        }
    }

    // MARK: locations

    /// A finding at a rule read from `--input` names the file and the line of that rule's `-A`, however the file is
    /// laid out: shifted by comment lines, and in the `iptables -t nat -A …` command-list form.
    @Test func findingsCarryTheRuleFileAndLine() throws {
        let original = try String(contentsOf: Self.repo.appendingPathComponent(Self.broken), encoding: .utf8)
        let shifted = "# a dump with a header\n# of three lines\n\n" + original
        let newChains = original.split(separator: "\n").filter { $0.hasPrefix(":") && $0.contains(" - ") }
            .map { "iptables -t nat -N " + $0.dropFirst().prefix { $0 != " " } }
        let commands = (newChains + original.split(separator: "\n").filter { $0.hasPrefix("-A") }.map { "iptables -t nat " + $0 })
            .joined(separator: "\n") + "\n"
        for text in [original, shifted, commands] {
            let file = try Self.temp(text, "save")
            defer { unlink(file) }
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let r = try Self.run(["verify", "--pod", Self.pod, "--input", file, "-o", "json"])
            #expect(r.status == 1, "\(r.stderr)")
            let findings = (try Self.json(r.stdout)["findings"] as? [[String: Any]]) ?? []
            #expect(findings.count == 2)
            for f in findings {
                let ruleText = try #require(f["ruleText"] as? String)
                #expect(f["file"] as? String == file)
                let line = try #require(f["line"] as? Int)
                #expect(lines[line - 1].hasSuffix(ruleText), "line \(line) is `\(lines[line - 1])`, the finding's rule `\(ruleText)`")
            }
        }
        // Rules placed by -I and -R (an iptables-restore script may insert, replace and delete) carry the line that
        // placed them, and -I with two sources (two rules from one line) gives both that line.
        let edited = original.replacingOccurrences(of: "-A OUTPUT -p tcp -m tcp --dport 5432 -j RETURN\n", with: "")
            .replacingOccurrences(of: "COMMIT\n", with: """
                -I OUTPUT 1 -p tcp -m tcp --dport 9999 -j RETURN
                -R OUTPUT 1 -p tcp -m tcp --dport 5432 -j RETURN
                -I OUTPUT 1 -s 10.1.0.1,10.1.0.2 -p tcp -m tcp --dport 5433 -j RETURN
                -D OUTPUT -s 10.1.0.2/32 -p tcp -m tcp --dport 5433 -j RETURN
                COMMIT

                """)
        let editedFile = try Self.temp(edited, "save")
        defer { unlink(editedFile) }
        let editedLines = edited.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let r = try Self.run(["verify", "--pod", Self.pod, "--input", editedFile, "-o", "json"])
        let foreign = ((try Self.json(r.stdout)["findings"] as? [[String: Any]]) ?? []).filter { $0["kind"] as? String == "foreign-rule" }
        #expect(!foreign.isEmpty, "\(r.stderr)")
        for f in foreign {
            let line = try #require(f["line"] as? Int)
            let text = editedLines[line - 1]
            #expect(text.hasPrefix("-I OUTPUT 1 -s 10.1.0.1,10.1.0.2") || text.hasPrefix("-R OUTPUT 1"), "line \(line): \(text)")
        }
        // A live read or a bundle has no file: no location is invented.
        let bundle = NSTemporaryDirectory() + "iptaudit-conventions-\(UUID().uuidString).json"
        defer { unlink(bundle) }
        try #require(try Self.run(["capture", "--input", Self.broken, "-w", bundle]).status == 0)
        let fromBundle = try Self.json(try Self.run(["verify", "--pod", Self.pod, "--bundle", bundle, "-o", "json"]).stdout)
        for f in (fromBundle["findings"] as? [[String: Any]]) ?? [] { #expect(f["file"] == nil && f["line"] == nil) }
    }

    // MARK: SARIF, GitHub, and agreement

    static let sarifSchema = Fixtures.root.appendingPathComponent("sarif/sarif-schema-2.1.0.json").path

    /// SARIF from both examples validates against the official SARIF 2.1.0 schema (OASIS), checked by the jsonschema
    /// validator; each result sits at its rule's file and line, and each kind is a rule with help.
    @Test(arguments: [broken, healthy, "bundle"])
    func sarifIsValidAndPointsAtTheRule(_ input: String) throws {
        // A bundle's rules have no line of their own: each result sits at line 1 of the bundle, as code scanning
        // needs a file for every result.
        let bundle = NSTemporaryDirectory() + "iptaudit-conventions-\(UUID().uuidString).json"
        defer { unlink(bundle) }
        if input == "bundle" { try #require(try Self.run(["capture", "--input", Self.broken, "-w", bundle]).status == 0) }
        let source = input == "bundle" ? ["--bundle", bundle] : ["--input", input]
        let r = try Self.run(["verify", "--pod", Self.pod, "-o", "sarif"] + source)
        #expect(r.status == (input == Self.healthy ? 0 : 1), "\(r.stderr)")
        let file = try Self.temp(r.stdout, "sarif")
        defer { unlink(file) }
        let valid = try Self.python("""
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[2]))
            jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker()).validate(json.load(open(sys.argv[1])))
            print("valid")
            """, [file, Self.sarifSchema])
        #expect(valid.status == 0 && valid.stdout == "valid\n", "\(valid.stderr)")
        let sarif = try Self.json(r.stdout)
        #expect(sarif["version"] as? String == "2.1.0")
        let run = try #require((sarif["runs"] as? [[String: Any]])?.first)
        let driver = try #require((run["tool"] as? [String: Any])?["driver"] as? [String: Any])
        let rules = try #require(driver["rules"] as? [[String: Any]])
        #expect(rules.compactMap { $0["id"] as? String } == FindingKind.all.map(\.rawValue))
        for rule in rules {
            let help = (rule["help"] as? [String: Any])?["text"] as? String ?? ""
            #expect(help.contains("docs/findings.md#\(rule["id"] as? String ?? "?")"))
        }
        let results = try #require(run["results"] as? [[String: Any]])
        #expect(results.isEmpty == (input == Self.healthy))
        var fingerprints: Set<String> = []
        for result in results {
            let location = try #require((result["locations"] as? [[String: Any]])?.first)
            let physical = try #require(location["physicalLocation"] as? [String: Any])
            let line = try #require((physical["region"] as? [String: Any])?["startLine"] as? Int)
            let rule = try #require((result["properties"] as? [String: Any])?["rule"] as? String)
            if input == "bundle" {
                #expect((physical["artifactLocation"] as? [String: Any])?["uri"] as? String == "file://" + bundle && line == 1)
            } else {
                #expect((physical["artifactLocation"] as? [String: Any])?["uri"] as? String == input)
                let lines = try String(contentsOf: Self.repo.appendingPathComponent(input), encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
                #expect(String(lines[line - 1]) == rule)
            }
            // The fingerprint names the rule by its text, not its position, and tells the findings apart.
            let fingerprint = try #require((result["partialFingerprints"] as? [String: String])?["iptaudit/v1"])
            #expect(fingerprint.contains(rule) && !fingerprint.contains("#"))
            #expect(fingerprints.insert(fingerprint).inserted)
            let message = (result["message"] as? [String: Any])?["text"] as? String ?? ""
            #expect(message.contains("\nwitness: ") && message.contains("\npath: ") && message.contains("\nfix: "))
        }
    }

    /// A live read of a meshed pod with no rules: its findings name no rule and no file, so their SARIF results
    /// carry no location at all rather than an empty one, and the log still validates.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func aFindingWithNoPlaceHasNoSarifLocation() throws {
        let ns = try TestNamespace()
        let r = try Self.run(["verify", "--pod", Self.pod, "--netns", ns.path, "--no-ipv6", "-o", "sarif"])
        #expect(r.status == 1, "\(r.stderr)")
        let results = try #require(((try Self.json(r.stdout))["runs"] as? [[String: Any]])?.first?["results"] as? [[String: Any]])
        #expect(!results.isEmpty)
        for result in results {
            if let locations = result["locations"] as? [[String: Any]] {
                #expect(locations.allSatisfy { !$0.isEmpty }, "\(result)")
            }
        }
        #expect(results.contains { $0["locations"] == nil }, "the pod's missing rules are at no rule and in no file")
        let file = try Self.temp(r.stdout, "sarif")
        defer { unlink(file) }
        let valid = try Self.python("""
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[2]))
            jsonschema.validators.validator_for(schema)(schema).validate(json.load(open(sys.argv[1])))
            print("valid")
            """, [file, Self.sarifSchema])
        #expect(valid.status == 0 && valid.stdout == "valid\n", "\(valid.stderr)")
    }

    /// The three CI formats of one run say the same thing: JSON's findings are SARIF's results one for one (kind,
    /// level, place, file:line, message); JUnit fails exactly JSON's failed obligations, each with its findings.
    @Test func jsonSarifAndJUnitOfOneRunAgree() throws {
        let args = ["verify", "--pod", Self.pod, "--input", Self.broken]
        let json = try Self.json(try Self.run(args + ["-o", "json"]).stdout)
        let sarif = try Self.json(try Self.run(args + ["-o", "sarif"]).stdout)
        let junit = try Self.run(args + ["-o", "junit"]).stdout
        let findings = try #require(json["findings"] as? [[String: Any]])
        let results = try #require((sarif["runs"] as? [[String: Any]])?.first?["results"] as? [[String: Any]])
        #expect(findings.count == results.count && !findings.isEmpty)
        let level = ["error": "error", "warning": "warning", "info": "note"]
        for (f, r) in zip(findings, results) {
            #expect(r["ruleId"] as? String == f["kind"] as? String)
            #expect(r["level"] as? String == level[f["severity"] as? String ?? ""])
            let logical = ((r["locations"] as? [[String: Any]])?.first?["logicalLocations"] as? [[String: Any]])?.first?["name"] as? String
            #expect(logical == "\(f["table"]!) \(f["chain"]!)#\(f["ruleNumber"]!)")
            let region = (((r["locations"] as? [[String: Any]])?.first?["physicalLocation"] as? [String: Any])?["region"] as? [String: Any])?["startLine"] as? Int
            #expect(region == f["line"] as? Int)
            #expect(((r["message"] as? [String: Any])?["text"] as? String)?.hasPrefix(f["message"] as? String ?? "?") == true)
        }
        let junitFile = try Self.temp(junit, "xml")
        defer { unlink(junitFile) }
        let failed = try Self.python("""
            import sys, junitparser
            for suite in junitparser.JUnitXml.fromfile(sys.argv[1]):
                for case in suite:
                    if any(isinstance(r, junitparser.Failure) for r in case.result): print(case.name.split(":")[0])
            """, [junitFile])
        let jsonFailed = ((json["obligations"] as? [[String: Any]]) ?? []).filter { $0["status"] as? String == "failed" }.compactMap { $0["id"] as? String }
        #expect(failed.stdout.split(separator: "\n").map(String.init) == jsonFailed && !jsonFailed.isEmpty, "\(failed.stderr)")
        for f in findings {
            #expect(junit.contains("(\(Self.broken):\(f["line"] as? Int ?? 0))"), "JUnit names the rule's file:line")
        }
    }

    /// `-o github`: one workflow command per finding, at the file and line, escaped as the runner unescapes them.
    @Test func githubAnnotationsAreOnePerFindingAtTheRule() throws {
        let args = ["verify", "--pod", Self.pod, "--input", Self.broken]
        let json = try Self.json(try Self.run(args + ["-o", "json"]).stdout)
        let r = try Self.run(args + ["-o", "github"])
        #expect(r.status == 1)
        func escaped(_ s: String) -> String { s.replacing("%", with: "%25").replacing("\r", with: "%0D").replacing("\n", with: "%0A") }
        var expected = ""
        for f in (json["findings"] as? [[String: Any]]) ?? [] {
            let body = ["\(f["message"]!)", "witness: \((f["witness"] as? [String: Any])?["text"] ?? "")",
                        "path: " + ((f["path"] as? [String]) ?? []).joined(separator: " → "), "fix: \(f["fix"]!)"].joined(separator: "\n")
            expected += "::error file=\(Self.broken),line=\(f["line"]!),title=iptaudit \(f["kind"]!) (ipv4) at \(f["table"]!) \(f["chain"]!)#\(f["ruleNumber"]!)::\(escaped(body))\n"
        }
        expected += "iptaudit: capture NOT proven for file \(Self.broken): 2 errors, 0 warnings\n"
        #expect(r.stdout == expected)
        let healthy = try Self.run(["verify", "--pod", Self.pod, "--input", Self.healthy, "-o", "github"])
        #expect(healthy.status == 0 && !healthy.stdout.contains("::error"))
        // A file name with the runner's separators is escaped in the property, as actions/toolkit escapes it.
        let dir = NSTemporaryDirectory() + "iptaudit-gh-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let odd = dir + "/pod:a,b%c.save"
        try FileManager.default.copyItem(atPath: Self.repo.appendingPathComponent(Self.broken).path, toPath: odd)
        let escaped = try Self.run(["verify", "--pod", Self.pod, "--input", odd, "-o", "github"])
        let first = try #require(escaped.stdout.split(separator: "\n").first)
        #expect(first.hasPrefix("::error file=\(dir.replacing(":", with: "%3A"))/pod%3Aa%2Cb%25c.save,line=11,title=iptaudit foreign-rule (ipv4) at nat OUTPUT#1::"), "\(first)")
    }
}
