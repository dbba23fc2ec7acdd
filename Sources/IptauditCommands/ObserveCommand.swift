import ArgumentParser
import CaptureVerifier
import Glibc
import IstioCapture
import NetfilterModel
import Reporters
import RuleReaders

/// `iptaudit observe`: audit capture by the pod's live connections, from inside the istio-proxy container
/// (UID 1337, no capabilities), where not a single rule can be read but every socket of the namespace can.
struct ObserveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "observe",
        abstract: "Judge the pod's live connections (its socket tables) against what the rules for its configuration do with each; no privileges needed.",
        discussion: """
            Pairs each application socket with Envoy's (an accepted socket on 15001 whose peer is the application's source, \
            or an inbound peer that is Envoy's forward) and compares what happened with what the rules for the configuration \
            (from /etc/istio/pod and the proxy's environment inside the proxy container) do with that exact connection. \
            With CAP_NET_ADMIN the live rules are read too: the rule proof is reported beside the observation, and a \
            connection whose fate contradicts the live rules is a finding. Sends nothing, changes nothing.
            Exit codes: 0 no error finding (or none at --fail-on's severity), 1 findings of error severity (or --fail-on's), 2 could not read or bad input, 64 usage.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json, yaml, junit, sarif, github }

    @Option(help: ArgumentHelp("Observe the network namespace at this path (/proc/PID/ns/net, /run/netns/NAME; entering it needs CAP_SYS_ADMIN).", valueName: "path"), completion: .file())
    var netns: String?
    @Option(help: ArgumentHelp("Observe the network namespace of this process (/proc/PID/net).", valueName: "pid"))
    var pid: Int32?
    @Option(help: ArgumentHelp("The downward-API directory with the pod's `annotations` and `labels` (read when present and no --pod is given).", valueName: "dir"), completion: .directory)
    var podInfo: String = ProxyContainerView.podInfoDirectory
    @OptionGroup var capture: CaptureOptions
    @Option(help: "Rule store to read when privileged (auto looks at both).")
    var backend: BackendChoice = .auto
    @Flag(help: "Do not read the rules even when privileged: judge by the rules for the configuration alone.")
    var noRules = false
    @Option(help: ArgumentHelp("How many times to read the socket tables (short-lived connections come and go).", valueName: "n"))
    var count: Int = 1
    @Option(help: ArgumentHelp("Seconds between reads.", valueName: "seconds"))
    var interval: Double = 1
    @Option(name: outputFormatNames, help: "text: the connections and findings; json: docs/json-schema.md (verify's document with connections); yaml: the same as YAML; sarif, github: the findings as verify writes them; junit: one testcase per obligation.")
    var format: Format = .text
    @OptionGroup var failOn: FailOnOption
    @OptionGroup var color: ColorOption

    func validate() throws {
        if netns != nil && pid != nil { throw ValidationError("give --netns or --pid, not both") }
        if let pid, pid <= 0 { throw ValidationError("--pid must be a process id, got \(pid)") }
        if count < 1 { throw ValidationError("--count must be at least 1, got \(count)") }
        if !(interval >= 0) || interval > 3600 { throw ValidationError("--interval must be between 0 and 3600 seconds, got \(interval)") }
    }

    var namespacePath: String? { netns ?? pid.map { "/proc/\($0)/ns/net" } }

    func run() throws {
        var samples: [[ObservedSocket]] = []
        var first: NamespaceSockets?
        for i in 0..<count {
            if i > 0 { pause(interval) }
            do {
                let read = try SocketTables.read(pid: pid, namespacePath: netns)
                if first == nil { first = read }
                samples.append(read.sockets)
            } catch {
                printError("iptaudit: \(error.description)" + (netns != nil ? "; entering another namespace needs CAP_SYS_ADMIN (use --pid PID as an unprivileged user)" : ""))
                throw ExitCodes.unreadable
            }
        }
        guard let sockets = first else { throw ExitCodes.unreadable }

        let ruleset = try readRules()
        var evidence = RuntimeEvidence()
        evidence.ipv6 = sockets.localAddresses.contains { $0.family == .ipv6 && $0.value != 1 && $0.value >> 118 != 0x3FA }
        if let ruleset {
            let dataPlane = IstioDataPlane(detectedIn: ruleset)
            if dataPlane.capturesIPv6 { evidence.ipv6 = true }
        }
        if pid != nil {
            evidence.dnsServers = RuntimeInputs.gather(pid: pid, namespacePath: nil).nameservers
        }
        if capture.pod == nil {
            evidence.proxyView = try proxyView()
            // Inside the proxy container its resolv.conf is the pod's.
            if evidence.proxyView != nil, pid == nil, netns == nil, let text = try? readResolvConf("/etc/resolv.conf") {
                evidence.dnsServers = RuntimeInputs.nameservers(inResolvConf: text)
            }
        }
        let config = try capture.configuration(evidence: evidence)
        let report = CaptureVerifier.observe(samples: samples, localAddresses: sockets.localAddresses, configuration: config, liveRules: ruleset)
        switch format {
        case .text:
            emit(ObservationText.render(report, ruleset: ruleset, source: sockets.source, style: .init(color: color.onStandardOutput)))
        case .json:
            emit(VerificationJSON.render(report, ruleset: ruleset, source: sockets.source))
        case .yaml:
            try emitYAML(json: VerificationJSON.render(report, ruleset: ruleset, source: sockets.source))
        case .junit:
            emit(VerificationJUnit.render(report.verification, source: sockets.source, command: "observe"))
        case .sarif:
            emit(VerificationSARIF.render(report.verification, source: sockets.source, toolVersion: IptauditCommand.configuration.version))
        case .github:
            emit(GitHubAnnotations.render(report.verification, source: sockets.source))
        }
        if failOn.threshold.fails(report.verification.findings) { throw ExitCodes.findings }
    }

    /// The live rules when this process may read them (CAP_NET_ADMIN), else nil: observation stands alone.
    func readRules() throws -> Ruleset? {
        guard !noRules, Privileges.canReadRules else { return nil }
        let reader = LiveRulesetReader(backend: backend, namespacePath: namespacePath, readPolicyRouting: true,
                                       preferredChains: IstioNames.isIstioChain)
        do {
            return try reader.read(ReadRequest())
        } catch {
            printError("iptaudit: \(error.description)")
            throw ExitCodes.unreadable
        }
    }

    /// The pod's annotations and labels from the downward-API files and this process's environment, when this is
    /// the proxy container (or the files are there).
    func proxyView() throws -> (name: String, manifest: PodManifest)? {
        let environment = processEnvironment()
        func file(_ name: String) -> String? {
            let path = podInfo + "/" + name
            return try? String(decoding: FileContents.read(path: path), as: UTF8.self)
        }
        let annotations = file(ProxyContainerView.annotationsFile)
        let labels = file(ProxyContainerView.labelsFile)
        let isProxy = ProxyContainerView.isProxyEnvironment(environment)
        guard annotations != nil || isProxy else { return nil }
        let manifest = ProxyContainerView.manifest(
            annotations: annotations.map(ProxyContainerView.parseDownwardAPI) ?? [:],
            labels: labels.map(ProxyContainerView.parseDownwardAPI) ?? [:],
            environment: environment,
            proxyUID: isProxy ? getuid() : nil, proxyGID: isProxy ? getgid() : nil)
        return ("\(podInfo)/\(ProxyContainerView.annotationsFile) and the proxy's environment", manifest)
    }

    func processEnvironment() -> [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") { out[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
            p += 1
        }
        return out
    }

    func pause(_ seconds: Double) {
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}
