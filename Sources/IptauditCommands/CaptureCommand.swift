import ArgumentParser
import IstioCapture
import NetfilterModel
import RuleReaders

/// `iptaudit capture -o FILE`: one JSON bundle holding everything `verify --bundle` needs later, offline.
struct CaptureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Save the pod's tables (every backend, both families, counters), policy routing and runtime inputs into one bundle for offline verify/show.",
        discussion: """
            The bundle is JSON (docs/bundle-format.md). It holds only allow-listed facts: the rules, ip rule/routes, \
            resolv.conf nameservers, IPv6 evidence, host name, namespace inode, iptables versions, capture time, and the \
            pod manifest given with --pod, verbatim. No environment variables, no other files.
            Exit codes: 0 written, 2 could not read or write, 64 usage.
            """)

    @OptionGroup var source: SourceOptions
    /// `-w` as tcpdump writes a capture (and `verify --bundle` reads it back); `-o` is every other command's format.
    @Option(name: [.customShort("w"), .customLong("write")], help: ArgumentHelp("Write the bundle here (- for standard output).", valueName: "file"),
            completion: .file(extensions: ["json"]))
    var output: String?
    /// The bundle's file was `-o` before `-o` became the output format everywhere: still accepted, with a warning,
    /// so scripts written for it keep working while they move to `-w`.
    @Option(name: [.customShort("o"), .customLong("output")], help: .hidden)
    var formerOutput: String?
    @Option(help: ArgumentHelp("Pod manifest to keep in the bundle, verbatim (YAML or JSON; - for stdin); verify uses it unless given its own --pod.", valueName: "file"), completion: .file())
    var pod: String?
    @Option(help: "Force the family of --input text (normally detected from the content).")
    var family: FamilyChoice = .all

    func validate() throws {
        if source.bundle != nil { throw ValidationError("capture reads live tables or --input; --bundle is already a capture") }
        if formerOutput != nil, output != nil { throw ValidationError("give the bundle's file once, with -w FILE") }
        guard let output = output ?? formerOutput else { throw ValidationError("give the bundle's file with -w FILE (- for standard output)") }
        if output.isEmpty { throw ValidationError("-w: give a file name") }
    }

    func run() throws {
        if let formerOutput {
            printError("iptaudit: capture -o FILE is now -w FILE (-w \(formerOutput)); -o is the other commands' output format")
        }
        let output = self.output ?? formerOutput ?? "-"
        if output != "-" {
            let path = output
            let check = Result { () throws(OutputFile.Failure) in try OutputFile.checkReplaceable(path) }
            if case .failure(let e) = check {
                printError("iptaudit: \(RuleReaderError.unwritableOutput(file: path, reason: e.description))")
                throw ExitCodes.unreadable
            }
        }
        let manifest = try pod.map(loadManifest)
        let from: CaptureBundle.CaptureSource = source.inputs.isEmpty
            ? .live(backend: source.backend, namespacePath: source.namespacePath, pid: source.pid)
            : .text(inputs: source.inputs, family: family.forced)
        let version = IptauditCommand.configuration.version
        let result = Result { () throws(RuleReaderError) -> CaptureBundle in
            // Without --pod, the istio-proxy process's own view of its pod (as `verify --pid` reads it) goes in.
            let proxy = manifest == nil ? source.pid.flatMap(proxyRecord(ofProcess:)) : nil
            let bundle = try CaptureBundle.capture(from: from, toolVersion: version.isEmpty ? "unknown" : version, podManifest: manifest, proxy: proxy,
                                                   preferredChains: IstioNames.isIstioChain)
            if output != "-" { try bundle.write(to: output) }
            return bundle
        }
        let bundle: CaptureBundle
        switch result {
        case .success(let b): bundle = b
        case .failure(let error):
            printError("iptaudit: \(error.description)")
            throw ExitCodes.unreadable
        }
        if output == "-" { emit(String(decoding: bundle.encoded(), as: UTF8.self) + "\n") }
        if output != "-" {
            var tables = bundle.rules.map { "\($0.backend.rawValue) \($0.family.rawValue): \($0.tables.count) table\($0.tables.count == 1 ? "" : "s")" }
            if !bundle.nativeNftables.isEmpty {
                tables.append("native nftables: " + bundle.nativeNftables.map { "\($0.family.rawValue) \($0.name)" }.joined(separator: ", "))
            }
            printError("iptaudit: wrote \(output) (\(tables.joined(separator: ", ")))")
        }
    }

    /// The manifest text, refused now if it does not parse, so a bundle never carries one verify cannot use.
    private func loadManifest(_ path: String) throws -> CaptureBundle.PodManifestText {
        let text = try readManifestText(path)
        let parsed = Result { () throws(IstioCaptureError) in try PodManifest(yaml: text) }
        if case .failure(let e) = parsed {
            printError("iptaudit: \(path): \(e.description)")
            throw ExitCodes.unreadable
        }
        return CaptureBundle.PodManifestText(fileName: path, text: text)
    }
}
