import ArgumentParser
import CaptureVerifier
import Glibc
import IstioCapture
import NetfilterModel
import Reporters
import RuleReaders

/// `iptaudit node`: every pod on the node at once. Finds each network namespace (the host's left out), works out
/// the pod and its configuration from what Istio put in it (the istio-proxy process, its environment and
/// downward-API files) and from `--pods`, and judges each exactly as `verify --pid` would.
struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Audit every pod network namespace on this node (run as root on the node, or with hostPID); one line, object, testsuite or metric set per pod.",
        discussion: """
            Namespaces come from /proc/*/ns/net (one per inode) and /run/netns/*; the host's (PID 1's, and \
            iptaudit's own) is skipped. For each, the pid read is the istio-proxy's (pilot-agent, else envoy) when the \
            namespace has one, else its lowest; the pod's configuration comes from the --pods item whose IP the \
            namespace holds, else from that proxy's environment and /etc/istio/pod files, else Istio's injection \
            defaults; the rules are then judged exactly as `iptaudit verify --pid PID [--pod ITEM]` judges them. \
            Pods with no Istio rule and no sign of the mesh are not meshed and not judged; a meshed pod without \
            rules is judged (and fails). Reads only: no table is changed, no lock taken, no packet sent.
            Exit codes: 0 every meshed pod proven and every namespace judged, 1 a pod has error findings or could \
            not be read or judged (including the per-pod timeout), 2 the audit could not run (--pods unreadable, \
            --output-file not writable), 64 usage.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json, yaml, junit, prometheus }

    @Option(name: outputFormatNames,
            help: "text: one line per pod; json: one object per pod with verify's document (docs/json-schema.md); yaml: the same as YAML; junit: one testsuite per pod; prometheus: the text exposition format (docs/running-in-a-cluster.md).")
    var format: Format = .text

    @Option(help: ArgumentHelp("`kubectl get pods -A -o json --field-selector spec.nodeName=NODE` (- for stdin): pods matched to namespaces by IP give names and configuration.", valueName: "file"))
    var pods: String?

    @Option(help: ArgumentHelp("Namespaces judged at once (default: the number of online CPUs).", valueName: "n"))
    var jobs: Int?

    @Option(help: ArgumentHelp("Seconds one pod may take before it is reported as not judged (the others go on).", valueName: "seconds"))
    var timeout: Double = 30

    @Option(help: "Rule store to read in each namespace (auto looks at both).")
    var backend: BackendChoice = .auto

    @Option(help: ArgumentHelp("Write the report to this file instead of stdout, replacing it atomically (mode 0644: a node-exporter textfile collector can read it); - is stdout.", valueName: "path"))
    var outputFile: String?
    /// `--output-file`, where `-` (standard output, as iptaudit's messages offer) is no file.
    var outputPath: String? { outputFile == "-" ? nil : outputFile }

    /// `--listen`: keep running, audit every `--interval`, serve the exposition on /metrics (the DaemonSet in deploy/).
    @OptionGroup var listen: ListenOptions

    func validate() throws {
        if let jobs, jobs < 1 || jobs > 256 { throw ValidationError("--jobs must be between 1 and 256, got \(jobs)") }
        if !(timeout > 0) || timeout > 3600 { throw ValidationError("--timeout must be more than 0 and at most 3600 seconds, got \(timeout)") }
    }

    func run() throws {
        if listen.address != nil {
            guard format == .prometheus || format == .text, outputPath == nil else {
                throw ValidationError("--listen serves the Prometheus exposition; it takes neither -o \(format.rawValue) nor --output-file")
            }
            // Read at start, so a list that cannot be read is exit 2 before anything is served; a file is read
            // again at every audit (pods come and go, addresses are reused), standard input only this once.
            let initial = try loadPods()
            let auditor = NodeAuditor(backend: backend, pods: initial, podsName: pods ?? "--pods", capture: try CaptureOptions.parse([]))
            let width = jobs ?? Int(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
            let timeout = self.timeout
            let reread = pods == "-" ? nil : pods
            // Each audit runs on BoundedWork's own threads; the task waiting for it holds one thread of the pool
            // while it runs, and the server answers on SwiftNIO's event loop meanwhile. The input limits travel
            // with the task (a task-local). An unreadable list fails that audit: /metrics keeps the last good one.
            try listen.serve {
                var current = auditor
                if let reread { current.pods = try Self.readPods(reread) }
                return NodeMetrics.render(current.run(jobs: width, timeout: timeout, started: BoundedWork<Int>.now()))
            }
            return
        }
        let started = BoundedWork<Int>.now()
        let manifests = try loadPods()
        if let outputFile = outputPath {
            do { try OutputFile.checkReplaceable(outputFile) } catch {
                printError("iptaudit: \(outputFile): \(error.description)")
                throw ExitCodes.unreadable
            }
        }
        let audit = NodeAuditor(backend: backend, pods: manifests, podsName: pods ?? "--pods", capture: try CaptureOptions.parse([]))
            .run(jobs: jobs ?? Int(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))), timeout: timeout, started: started)
        let text = switch format {
        case .text: NodeText.render(audit)
        case .json: NodeJSON.render(audit)
        case .yaml: try yamlDocument(json: NodeJSON.render(audit))
        case .junit: NodeJUnit.render(audit)
        case .prometheus: NodeMetrics.render(audit)
        }
        if let outputFile = outputPath {
            do { try OutputFile.replace(outputFile, with: Array(text.utf8), mode: 0o644) } catch {
                printError("iptaudit: \(outputFile): \(error.description)")
                throw ExitCodes.unreadable
            }
        } else {
            emit(text)
        }
        if audit.hasError || audit.unreadableCount > 0 { throw ExitCodes.findings }
    }

    func loadPods() throws -> [PodManifest] {
        do { return try Self.readPods(pods) } catch {
            printError("iptaudit: \(error.description)")
            throw ExitCodes.unreadable
        }
    }

    /// `--pods` read and parsed, or why not in one line naming the file.
    static func readPods(_ pods: String?) throws(PodListUnreadable) -> [PodManifest] {
        guard let pods else { return [] }
        let text: String
        do {
            text = try manifestText(pods)
        } catch {
            throw PodListUnreadable(description: "\(pods): cannot read the pod list: \(error.description)")
        }
        // `kubectl get pods -o json` never prints nothing; an empty file is one being rewritten in place.
        guard text.contains(where: { !$0.isWhitespace }) else {
            throw PodListUnreadable(description: "\(pods): the pod list is empty (write it to a temporary file and rename it over the old one)")
        }
        do { return try PodManifest.all(yaml: text) } catch {
            throw PodListUnreadable(description: "\(pods): \(error.description)")
        }
    }
}

struct PodListUnreadable: Error, CustomStringConvertible {
    var description: String
}

/// One node audit: discovery, then each namespace on `BoundedWork`'s threads.
struct NodeAuditor: @unchecked Sendable {
    // @unchecked: `capture` is a parsed option group, read-only once made.
    var backend: BackendChoice
    var pods: [PodManifest]
    var podsName: String
    var capture: CaptureOptions
    /// Pod names from the container runtime's sandbox bundles, by namespace inode.
    var sandboxes: [UInt64: SandboxIdentity] = SandboxMetadata.identities()

    func run(jobs: Int, timeout: Double, started: Double) -> NodeAudit {
        let inventory = NodeNamespaces.discover()
        let namespaces = inventory.namespaces
        let results = BoundedWork<PodAudit>.run(count: namespaces.count, width: jobs, timeout: timeout, { index in
            audit(namespaces[index])
        }, timedOut: { index in
            var pod = PodAudit(netns: namespaces[index].path, inode: namespaces[index].inode)
            pod.boundNames = namespaces[index].boundNames
            pod.failure = "not judged within --timeout \(timeout) s"
            return pod
        })
        // A pod deleted while the audit ran left a namespace that could not be entered: not a failure to report.
        let present = zip(namespaces, results).filter { $0.1.failure == nil || $0.0.stillExists }.map(\.1)
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return NodeAudit(pods: present, unreadable: inventory.unreadable, seconds: BoundedWork<Int>.now() - started,
                         finishedAt: Double(now.tv_sec) + Double(now.tv_nsec) / 1e9)
    }

    /// One namespace, as `verify --pid PID [--pod ITEM]` judges it (`--netns PATH` when no process holds it).
    func audit(_ namespace: NodeNamespace) -> PodAudit {
        let began = BoundedWork<Int>.now()
        var pod = PodAudit(netns: namespace.path, inode: namespace.inode)
        fill(&pod, namespace)
        pod.seconds = BoundedWork<Int>.now() - began
        return pod
    }

    private func fill(_ pod: inout PodAudit, _ namespace: NodeNamespace) {
        let proxy = ProxyContainerView.proxyProcess(among: namespace.processes, command: \.command)
        let pid = proxy?.pid ?? namespace.processes.first?.pid
        let path = pid.map { "/proc/\($0)/ns/net" } ?? namespace.path
        pod.netns = path
        pod.boundNames = namespace.boundNames
        pod.pid = pid
        pod.proxyPID = proxy?.pid
        pod.proxyUID = proxy?.uid
        var notes: [String] = []
        do {
            let addresses = try NodeNamespaces.addresses(namespacePath: path)
            pod.podIPs = addresses.filter { $0.isGlobal }.map(\.address.description)
            // A finished pod (a completed Job's) keeps its address in the list after the address went to another pod.
            let manifest = pods.first { !$0.hasEnded && !Set($0.podIPs).isDisjoint(with: pod.podIPs) }
            let view = pid.flatMap(proxyView(ofProcess:))
            if let manifest {
                pod.podNamespace = manifest.namespace
                pod.podName = manifest.name
                pod.identitySource = podsName
            } else if let sandbox = sandboxes[namespace.inode] {
                pod.podNamespace = sandbox.namespace
                pod.podName = sandbox.name
                pod.identitySource = sandbox.source
            } else if let env = view?.manifest.containers.first?.environment, let name = env[ProxyContainerView.podNameVariable] {
                pod.podNamespace = env[ProxyContainerView.podNamespaceVariable]
                pod.podName = name
                pod.identitySource = "the istio-proxy process's environment"
            }
            let reader = LiveRulesetReader(backend: backend, namespacePath: path, readPolicyRouting: true,
                                           preferredChains: IstioNames.isIstioChain)
            let ruleset = try reader.read(ReadRequest())
            pod.source = reader.sourceDescription
            pod.ruleset = ruleset
            if let proxy {
                pod.evidence = .sidecar("istio-proxy process \(proxy.pid) (\(proxy.command))")
            } else if view != nil, let pid {
                pod.evidence = .sidecar("istio-proxy environment of process \(pid)")
            } else if let manifest {
                let where_ = "\(podsName): \(manifest.namespace)/\(manifest.name)"
                if AmbientSettings.isAmbient(manifest.annotations) {
                    pod.evidence = .ambient("\(where_) annotation \(AmbientNames.redirectionAnnotation)=enabled")
                } else if manifest.proxyContainer != nil || manifest.annotations[ProxyContainerView.injectedAnnotation] != nil {
                    pod.evidence = .sidecar("\(where_) has Istio's sidecar")
                }
            }
            pod.mode = PodAudit.classify(rules: IstioDataPlane(detectedIn: ruleset).mode, evidence: pod.evidence)
            if pod.mode == .notMeshed { return }
            let runtime = RuntimeInputs.gather(pid: pid, namespacePath: path)
            var evidence = RuntimeEvidence()
            if let manifest {
                let name = "\(podsName) (pod \(manifest.namespace)/\(manifest.name))"
                evidence.podManifest = (name, manifest)
                pod.configurationSource = name
            } else if let view {
                evidence.proxyView = view
                pod.configurationSource = view.name
            } else {
                pod.configurationSource = "Istio's injection defaults"
            }
            let judged = try PodVerification.judge(ruleset, source: reader.sourceDescription, runtime: runtime, evidence: evidence,
                                                   capture: capture, diagnose: { notes.append($0) })
            pod.report = judged.report
        } catch let error as RuleReaderError {
            pod.failure = error.description
        } catch let error as ValidationError {
            pod.failure = error.message
        } catch {
            pod.failure = notes.last.map { $0.hasPrefix("iptaudit: ") ? String($0.dropFirst(10)) : $0 } ?? "could not judge: \(error)"
        }
        pod.notes = notes
    }
}
