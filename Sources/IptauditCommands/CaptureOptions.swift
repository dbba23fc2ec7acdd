import ArgumentParser
import IstioCapture
import NetfilterModel
import RuleReaders

/// The pod's capture configuration: pasted istio-iptables arguments, a pod manifest, individual knobs,
/// or — with none of them — Istio's default sidecar injection.
struct CaptureOptions: ParsableArguments {
    // Unconditional: the value itself starts with a dash (`--istio-args "-p 15001 -u 1337"`).
    @Option(parsing: .unconditional, help: ArgumentHelp("istio-iptables arguments, as the istio-init container's args (a leading `istio-iptables` is fine).", valueName: "args"))
    var istioArgs: String?

    @Option(help: ArgumentHelp("Pod manifest (YAML or JSON, as `kubectl get pod -o yaml` prints it; - for stdin).", valueName: "file"), completion: .file())
    var pod: String?

    @Option(help: ArgumentHelp("The pod's resolv.conf nameservers, comma separated (DNS capture matches them); '' for none.", valueName: "list"))
    var dnsServers: String?

    @Option(help: ArgumentHelp("The pod's resolv.conf, for its nameservers (a live read finds it itself only with --pid).", valueName: "file"), completion: .file())
    var resolvConf: String?
    @Option(help: ArgumentHelp("An /etc/group of the proxy image, to number owner-group names (a live read finds it itself with the istio-proxy container's --pid).", valueName: "file"), completion: .file())
    var groupFile: String?

    @Flag(inversion: .prefixedNo, help: "Whether the pod has IPv6 (then Istio installs ip6tables rules too).")
    var ipv6: Bool?

    @Option(help: ArgumentHelp("An environment knob istio-iptables reads (ISTIO_META_DNS_CAPTURE=true, INVALID_DROP=true, ...); repeatable.", valueName: "key=value"))
    var istioEnv: [String] = []

    @Option(help: ArgumentHelp("Istio version, as in the proxy image tag (1.22.8); shapes differ between minors.", valueName: "version"))
    var istioVersion: String?

    @Flag(help: "The pod is in ambient mode: check istio-cni's in-pod rules for ztunnel (normally detected from the rules or the pod's ambient.istio.io/redirection annotation).")
    var ambient = false

    @Option(help: ArgumentHelp("Ambient: the node agent's DNS capture (istio-cni ambient.dnsCapture; default: the release's chart default, on from 1.25).", valueName: "true|false"))
    var ambientDnsCapture: Bool?

    @Option(help: ArgumentHelp("Ambient: the address the node SNATs kubelet probes to (HOST_PROBE_SNAT_IP / _IPV6; defaults 169.254.7.127, fd16:9254:7127:1337:ffff:ffff:ffff:ffff); repeatable, one per family.", valueName: "addr"))
    var hostProbeSnat: [String] = []

    func validate() throws {
        for a in hostProbeSnat where IPAddress(a) == nil { throw ValidationError("--host-probe-snat: '\(a)' is not an IP address") }
        if let v = istioVersion, IstioVersion(v) == nil { throw ValidationError("--istio-version: expected a version like 1.22.8, got '\(v)'") }
        for kv in istioEnv where !kv.contains("=") { throw ValidationError("--istio-env: expected KEY=VALUE, got '\(kv)'") }
        for s in dnsList where IPAddress(s) == nil { throw ValidationError("--dns-servers: '\(s)' is not an IP address") }
    }

    var dnsList: [String] { (dnsServers ?? "").split(separator: ",").map { $0.trimmingWhitespace }.filter { !$0.isEmpty } }

    /// The declarations above for the direct parse (DirectParse.swift); DirectParseTests hold them to ArgumentParser's.
    static let directOptions: [DirectOption<CaptureOptions>] = [
        .option("--istio-args", as: String.self, unconditional: true) { $0.istioArgs = $1 },
        .option("--pod", as: String.self) { $0.pod = $1 },
        .option("--dns-servers", as: String.self) { $0.dnsServers = $1 },
        .option("--resolv-conf", as: String.self) { $0.resolvConf = $1 },
        .option("--group-file", as: String.self) { $0.groupFile = $1 },
        .flag("--ipv6") { $0.ipv6 = true },
        .flag("--no-ipv6") { $0.ipv6 = false },
        .option("--istio-env", as: String.self) { $0.istioEnv.append($1) },
        .option("--istio-version", as: String.self) { $0.istioVersion = $1 },
        .flag("--ambient") { $0.ambient = true },
        .option("--ambient-dns-capture", as: Bool.self) { $0.ambientDnsCapture = $1 },
        .option("--host-probe-snat", as: String.self) { $0.hostProbeSnat.append($1) },
    ]

    static var directDefault: CaptureOptions {
        var options = CaptureOptions()
        options.istioArgs = nil
        options.pod = nil
        options.dnsServers = nil
        options.resolvConf = nil
        options.groupFile = nil
        options.ipv6 = nil
        options.istioEnv = []
        options.istioVersion = nil
        options.ambient = false
        options.ambientDnsCapture = nil
        options.hostProbeSnat = []
        return options
    }

    var environment: [String: String] {
        var env: [String: String] = [:]
        for kv in istioEnv {
            let parts = kv.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            env[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return env
    }

    /// Builds the configuration; `evidence` lets a live read fill runtime inputs the user did not give.
    /// `diagnose` receives the line printed before an exit-2 error (`node` keeps it with the pod).
    func configuration(evidence: RuntimeEvidence = RuntimeEvidence(), diagnose: (String) -> Void = { printError($0) }) throws -> CaptureConfiguration {
        // Explicit servers (even none) win; then the pod's resolv.conf; then what the live read found through --pid.
        var given: [String]? = dnsServers == nil ? nil : dnsList
        if given == nil, let resolvConf { given = RuntimeInputs.nameservers(inResolvConf: try readResolvConf(resolvConf)) }
        let known = given ?? evidence.dnsServers
        let dns = known ?? []
        var config = CaptureConfiguration.injectorDefault
        config.versionAssumed = true
        var manifest: PodManifest?
        if let pod {
            let loaded = try loadManifest(pod, text: readInput(pod), dnsServers: dns, forceAmbient: ambient, diagnose: diagnose)
            manifest = loaded.0
            config = loaded.1
        } else if let given = evidence.podManifest {
            let loaded = try configure(given.manifest, name: given.name, dnsServers: dns, forceAmbient: ambient, diagnose: diagnose)
            manifest = loaded.0
            config = loaded.1
        } else if let saved = evidence.manifest {
            let loaded = try loadManifest(saved.name, text: saved.text, dnsServers: dns, forceAmbient: ambient, diagnose: diagnose)
            manifest = loaded.0
            config = loaded.1
        } else if let view = evidence.proxyView {
            let derived = Result { () throws(IstioCaptureError) in try view.manifest.captureConfiguration(dnsServers: dns) }
            switch derived {
            case .success(let c):
                manifest = view.manifest
                config = c
            case .failure(let e):
                diagnose("iptaudit: \(view.name): \(e.description); give the configuration with --pod, --istio-args or --istio-env")
                throw ExitCodes.unreadable
            }
        }
        if let istioArgs {
            var base = CaptureConfiguration()
            // The release decides which flags istio-iptables has, so it is known before the arguments are read.
            base.istioVersion = istioVersion.flatMap(IstioVersion.init) ?? config.istioVersion
            base.versionAssumed = istioVersion == nil && config.versionAssumed
            base.proxyRunAsUser = config.proxyRunAsUser
            base.proxyRunAsGroup = config.proxyRunAsGroup
            base.ipv6Enabled = config.ipv6Enabled
            var env = manifest?.proxyContainer?.environment ?? [:]
            for (k, v) in environment { env[k] = v }
            let parsed = Result { () throws(IstioCaptureError) in try IstioArguments.parse(istioArgs, environment: env, base: base) }
            switch parsed {
            case .success(let c): config = c
            case .failure(let e): throw ValidationError("--istio-args: \(e.description)")
            }
        } else if !environment.isEmpty {
            let applied = Result { () throws(IstioCaptureError) in
                var c = config
                try c.applyEnvironment(environment)
                return c
            }
            switch applied {
            case .success(let c): config = c
            case .failure(let e): throw ValidationError("--istio-env: \(e.description)")
            }
        }
        if let v = istioVersion.flatMap(IstioVersion.init) {
            config.istioVersion = v
            config.versionAssumed = false
        }
        if let known {
            config.dnsServersIPv4 = known.filter { IPAddress($0)?.family == .ipv4 }
            config.dnsServersIPv6 = known.filter { IPAddress($0)?.family == .ipv6 }
        } else if manifest?.explicitNameservers.isEmpty ?? true {
            config.dnsServersUnknown = true
        }
        if let ipv6 { config.ipv6Enabled = ipv6 } else if evidence.ipv6 == true { config.ipv6Enabled = true }
        // Ambient when told, when the manifest says so, or when the rules are ambient's and nothing says otherwise.
        let ambientByRules = evidence.ambient && manifest == nil && istioArgs == nil
        if (ambient || ambientByRules), config.ambient == nil {
            // Ambient pods carry no sidecar knobs: start from a clean configuration with the same families.
            var fresh = CaptureConfiguration()
            fresh.istioVersion = istioVersion.flatMap(IstioVersion.init) ?? AmbientShape.assumedVersion
            fresh.versionAssumed = istioVersion == nil
            fresh.ipv6Enabled = config.ipv6Enabled
            fresh.ambient = AmbientSettings()
            config = fresh
        }
        if config.ambient == nil, ambientDnsCapture != nil || !hostProbeSnat.isEmpty {
            throw ValidationError("--ambient-dns-capture and --host-probe-snat describe ambient's node agent, but this pod is checked as a sidecar pod; "
                + "add --ambient if it is an ambient pod")
        }
        if config.ambient != nil {
            let check = Result { () throws(IstioCaptureError) in
                try AmbientSettings.check(version: config.istioVersion, nativeNftables: config.nativeNftables || evidence.nativeAmbient)
            }
            if case .failure(let e) = check { throw ValidationError(e.description) }
            if let d = ambientDnsCapture { config.ambient?.dnsCapture = d }
            for a in hostProbeSnat {
                if IPAddress(a)?.family == .ipv4 { config.ambient?.probeSNATIPv4 = a } else { config.ambient?.probeSNATIPv6 = a }
            }
            if evidence.nativeAmbient { config.nativeNftables = true }
        }
        return config
    }

    /// Reads and interprets the pod manifest; failures exit 2 with the file named.
    private func loadManifest(_ path: String, text: String, dnsServers: [String], forceAmbient: Bool,
                              diagnose: (String) -> Void) throws -> (PodManifest, CaptureConfiguration) {
        let parsed = Result { () throws(IstioCaptureError) -> PodManifest in try PodManifest(yaml: text) }
        switch parsed {
        case .success(let m): return try configure(m, name: path, dnsServers: dnsServers, forceAmbient: forceAmbient, diagnose: diagnose)
        case .failure(let e):
            diagnose("iptaudit: \(path): \(e.description)")
            throw ExitCodes.unreadable
        }
    }

    /// What a pod manifest says the configuration is (a `--pod` file, a bundle's, a `node --pods` list item).
    private func configure(_ m: PodManifest, name: String, dnsServers: [String], forceAmbient: Bool,
                           diagnose: (String) -> Void) throws -> (PodManifest, CaptureConfiguration) {
        let result = Result { () throws(IstioCaptureError) -> CaptureConfiguration in
            forceAmbient ? m.ambientConfiguration() : try m.captureConfiguration(dnsServers: dnsServers)
        }
        switch result {
        case .success(let c): return (m, c)
        case .failure(let e):
            diagnose("iptaudit: \(name): \(e.description)")
            throw ExitCodes.unreadable
        }
    }

    private func readInput(_ path: String) throws -> String {
        try readManifestText(path)
    }
}

extension CaptureOptions {
    /// Owner-group names as the pod's /etc/group numbers them: `--group-file`, else what a live read found.
    func groupIDs(found: [String: UInt32]?, diagnose: (String) -> Void = { printError($0) }) throws -> [String: UInt32] {
        guard let groupFile else { return found ?? [:] }
        do {
            return RuntimeInputs.groups(inGroupFile: String(decoding: try FileContents.read(path: groupFile), as: UTF8.self))
        } catch {
            diagnose("iptaudit: \(groupFile): cannot read the group file: \(error.description)")
            throw ExitCodes.unreadable
        }
    }
}

/// The nameserver file a user names; a read failure exits 2 with the file named.
func readResolvConf(_ path: String) throws -> String {
    do {
        return String(decoding: try FileContents.read(path: path), as: UTF8.self)
    } catch {
        printError("iptaudit: \(path): cannot read the resolv.conf: \(error.description)")
        throw ExitCodes.unreadable
    }
}

/// The text of a pod manifest (`-` is standard input; pipes such as `--pod <(kubectl get pod my-pod -o yaml)` work);
/// a read failure exits 2 with the file named.
func readManifestText(_ path: String) throws -> String {
    do { return try manifestText(path) } catch {
        printError("iptaudit: \(path): cannot read the pod manifest: \(error.description)")
        throw ExitCodes.unreadable
    }
}

/// A manifest's (or pod list's) text, from a file or `-` (standard input), within the manifest size limit.
func manifestText(_ path: String) throws(FileContents.Failure) -> String {
    let limit = InputLimits.current.manifestBytes, variable = InputLimits.Variable.manifestBytes
    let bytes = path == "-" ? try FileContents.readStandardInput(limit: limit, variable: variable)
        : try FileContents.read(path: path, limit: limit, variable: variable)
    return String(decoding: bytes, as: UTF8.self)
}

/// What a live read can tell about the pod when the user did not say: its nameservers and whether it has IPv6.
struct RuntimeEvidence {
    /// nil: not known (no pid to reach the pod's resolv.conf, or a bundle captured without one).
    var dnsServers: [String]?
    var ipv6: Bool?
    /// A pod manifest kept with the rules (a capture bundle), used when `--pod` is not given.
    var manifest: (name: String, text: String)?
    /// A pod already parsed (`node --pods`), used as `--pod` would be.
    var podManifest: (name: String, manifest: PodManifest)?
    /// The rules are ambient's in-pod rules (and, with `nativeAmbient`, in `inet istio-ambient-*` tables).
    var ambient = false
    var nativeAmbient = false
    /// The pod as the proxy container sees it (downward-API files and its environment), used when neither
    /// `--pod` nor a bundle's manifest is given.
    var proxyView: (name: String, manifest: PodManifest)?
}

