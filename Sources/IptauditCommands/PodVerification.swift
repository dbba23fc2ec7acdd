import CaptureVerifier
import IstioCapture
import NetfilterModel
import RuleReaders

/// One namespace's rules judged the way `verify` judges them: the data plane the rules show, the configuration
/// from the options and what the live read found, the verifier's report. `verify` and `node` both call it, so a
/// pod in a node audit is judged exactly as `verify --pid PID` judges it alone.
struct PodVerification {
    var report: VerificationReport
    var dataPlane: IstioDataPlane
    var configuration: CaptureConfiguration

    /// `diagnose` receives what `verify` prints on stderr (warnings, and the line before an exit-2 error);
    /// `noIstioHint` ends the "no Istio chain" warning.
    static func judge(_ ruleset: Ruleset, source: String, runtime: RuntimeInputs?, evidence given: RuntimeEvidence,
                      capture: CaptureOptions, noIstioHint: String = "", diagnose: (String) -> Void) throws -> PodVerification {
        warnAboutSplitBackends(ruleset, diagnose: diagnose)
        var evidence = given
        if let runtime {
            evidence.dnsServers = runtime.nameservers
            evidence.ipv6 = runtime.hasGlobalIPv6
        }
        let dataPlane = IstioDataPlane(detectedIn: ruleset)
        if dataPlane.capturesIPv6 { evidence.ipv6 = true }
        switch dataPlane.mode {
        case .sidecar:
            break
        case .ambient:
            // istio-cni's in-pod rules for ztunnel: ambient's obligations, not the sidecar's.
            evidence.ambient = true
            evidence.nativeAmbient = IstioLayout.detected(in: ruleset.tables) == .ambientNftables
        case .none:
            // Every obligation will fail; say the likely reason once, before the details.
            diagnose("iptaudit: no Istio chain (ISTIO_*) in any table read from \(source)" + noIstioHint)
        }
        let config = try capture.configuration(evidence: evidence, diagnose: diagnose)
        if config.ambient != nil, dataPlane.mode == .none {
            diagnose("iptaudit: the pod is in ambient mode but no table read from \(source) holds istio-cni's in-pod rules")
        }
        let options = VerifierOptions(groupIDs: try capture.groupIDs(found: runtime?.groups, diagnose: diagnose))
        let limit = InputLimits.current.walkSteps
        let budget = WalkBudget(limit: limit)
        let report = WalkBudget.$current.withValue(budget) { CaptureVerifier.verify(ruleset, configuration: config, options: options) }
        if budget.isExhausted {
            // The walks stopped part way: the report is incomplete, so none is given.
            diagnose("iptaudit: \(source): verification stopped: " + InputLimits.exceeded(
                "walking the rules took more than \(limit) steps", limit: limit, variable: InputLimits.Variable.walkSteps))
            throw ExitCodes.unreadable
        }
        return PodVerification(report: report, dataPlane: dataPlane, configuration: config)
    }
}

/// The pod as its istio-proxy process sees it, read from the node: the process's environment
/// (`/proc/PID/environ`), the downward-API files the injector mounts in its container (through
/// `/proc/PID/root`), and the UID and GID it runs as. nil unless `pid`'s environment is the proxy's.
func proxyView(ofProcess pid: Int32) -> (name: String, manifest: PodManifest)? {
    guard let environment = NodeNamespaces.environment(pid: pid), ProxyContainerView.isProxyEnvironment(environment) else { return nil }
    let directory = ProxyContainerView.podInfoDirectory
    func downwardAPI(_ name: String) -> [String: String] {
        NodeNamespaces.file(pid: pid, path: directory + "/" + name).map(ProxyContainerView.parseDownwardAPI) ?? [:]
    }
    let process = NodeNamespaces.process(pid: pid)
    let manifest = ProxyContainerView.manifest(annotations: downwardAPI(ProxyContainerView.annotationsFile),
                                               labels: downwardAPI(ProxyContainerView.labelsFile), environment: environment,
                                               proxyUID: process?.uid, proxyGID: process?.gid)
    return ("the istio-proxy process \(pid) (its environment and \(directory))", manifest)
}
