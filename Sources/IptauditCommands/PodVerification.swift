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
    proxyRecord(ofProcess: pid).map { proxyView($0, name: "the istio-proxy process \(pid) (its environment and \(ProxyContainerView.podInfoDirectory))") }
}

/// What `proxyView` reads of a process, as a bundle keeps it: only what the configuration is derived from (the
/// variables, and the downward-API entries with Istio's keys), so no secret the pod carries is recorded.
func proxyRecord(ofProcess pid: Int32) -> CaptureBundle.ProxyRecord? {
    guard let environment = NodeNamespaces.environment(pid: pid), ProxyContainerView.isProxyEnvironment(environment) else { return nil }
    let directory = ProxyContainerView.podInfoDirectory
    let process = NodeNamespaces.process(pid: pid)
    func downwardAPI(_ name: String) -> String? {
        NodeNamespaces.file(pid: pid, path: directory + "/" + name).map(ProxyContainerView.istioEntries(ofDownwardAPI:))
    }
    return CaptureBundle.ProxyRecord(pid: pid, environment: environment.filter { ProxyContainerView.configurationVariables.contains($0.key) },
                                     annotations: downwardAPI(ProxyContainerView.annotationsFile), labels: downwardAPI(ProxyContainerView.labelsFile),
                                     uid: process?.uid, gid: process?.gid)
}

/// The pod as a recorded proxy view describes it (live, or from a bundle).
func proxyView(_ record: CaptureBundle.ProxyRecord, name: String) -> (name: String, manifest: PodManifest) {
    let manifest = ProxyContainerView.manifest(annotations: record.annotations.map(ProxyContainerView.parseDownwardAPI) ?? [:],
                                               labels: record.labels.map(ProxyContainerView.parseDownwardAPI) ?? [:],
                                               environment: record.environment, proxyUID: record.uid, proxyGID: record.gid)
    return (name, manifest)
}
