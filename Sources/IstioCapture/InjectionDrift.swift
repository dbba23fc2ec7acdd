import NetfilterModel

/// A setting on which the pod's own annotations and istio-init's arguments disagree.
///
/// The sidecar injector renders istio-init's `args` from the pod's `traffic.sidecar.istio.io/*` and
/// `sidecar.istio.io/interceptionMode` annotations (and writes the values it used back as annotations), so on a
/// freshly injected pod both say the same. They part when an annotation is changed on the running pod (istio-init
/// read its arguments once, when the pod started) or a custom injection template drops one. The rules then
/// match the arguments, and the pod does not get what its annotations ask for.
public struct InjectionDrift: Hashable, Sendable, Codable {
    /// The istio-iptables flag the annotation feeds.
    public enum Setting: String, Hashable, Sendable, Codable, CaseIterable {
        case interceptionMode = "-m"
        case outboundIPRangesInclude = "-i"
        case outboundIPRangesExclude = "-x"
        case inboundPortsInclude = "-b"
        case inboundPortsExclude = "-d"
        case outboundPortsInclude = "-q"
        case outboundPortsExclude = "-o"
        case excludeInterfaces = "-c"

        /// The annotation the injector reads for it.
        public var annotation: String {
            switch self {
            case .interceptionMode: "sidecar.istio.io/interceptionMode"
            case .outboundIPRangesInclude: "traffic.sidecar.istio.io/includeOutboundIPRanges"
            case .outboundIPRangesExclude: "traffic.sidecar.istio.io/excludeOutboundIPRanges"
            case .inboundPortsInclude: "traffic.sidecar.istio.io/includeInboundPorts"
            case .inboundPortsExclude: "traffic.sidecar.istio.io/excludeInboundPorts"
            case .outboundPortsInclude: "traffic.sidecar.istio.io/includeOutboundPorts"
            case .outboundPortsExclude: "traffic.sidecar.istio.io/excludeOutboundPorts"
            case .excludeInterfaces: "traffic.sidecar.istio.io/excludeInterfaces"
            }
        }
    }

    /// A setting's value, in the configuration's own terms.
    public enum Value: Hashable, Sendable, Codable {
        case ports(Selection<UInt16>)
        case ranges(Selection<String>)
        case interfaces([String])
        case mode(InterceptionMode)

        /// As istio-iptables' flag would be written (`*`, a comma list, `''`).
        public var text: String {
            func list(_ items: [String]) -> String { items.isEmpty ? "''" : items.joined(separator: ",") }
            switch self {
            case .ports(let s): return s.isAll ? "*" : list(s.items.map(String.init))
            case .ranges(let s): return s.isAll ? "*" : list(s.items)
            case .interfaces(let names): return list(names)
            case .mode(let m): return m.rawValue
            }
        }

        /// Order and repetition do not change what istio-iptables installs.
        public func same(as other: Value) -> Bool {
            switch (self, other) {
            case (.ports(let a), .ports(let b)): a.isAll == b.isAll && Set(a.items) == Set(b.items)
            case (.ranges(let a), .ranges(let b)): a.isAll == b.isAll && Set(a.items) == Set(b.items)
            case (.interfaces(let a), .interfaces(let b)): Set(a) == Set(b)
            case (.mode(let a), .mode(let b)): a == b
            default: false
            }
        }
    }

    public var setting: Setting
    /// The annotation's text, as the pod carries it.
    public var annotationValue: String
    /// What the annotation asks istio-init to be given.
    public var asked: Value
    /// What istio-init was given (its arguments, with istio-iptables' defaults where a flag is absent).
    public var given: Value

    public init(setting: Setting, annotationValue: String, asked: Value, given: Value) {
        self.setting = setting
        self.annotationValue = annotationValue
        self.asked = asked
        self.given = given
    }

    /// `traffic.sidecar.istio.io/excludeOutboundPorts: "5432" asks for -o 5432; istio-init was given no -o`.
    public var description: String {
        "\(setting.annotation): \(MessageText.quoted(annotationValue)) asks for \(setting.rawValue) \(asked.text); istio-init was given \(givenText)"
    }

    /// `no -o`, `-d 15090,15021,15020`.
    public var givenText: String {
        given.text == "''" ? "no \(setting.rawValue)" : "\(setting.rawValue) \(given.text)"
    }
}

extension PodManifest {
    /// Each setting whose annotation disagrees with what istio-init was given, as the injector's template maps
    /// one to the other. Only annotations the pod carries are compared, and only values the injector would pass
    /// on as they are (an annotation istio-iptables would reject is not this check's business).
    func injectionDrift(given config: CaptureConfiguration) -> [InjectionDrift] {
        var out: [InjectionDrift] = []
        func compare(_ setting: InjectionDrift.Setting, _ given: InjectionDrift.Value,
                     _ asked: (String) -> InjectionDrift.Value?) {
            guard let text = annotations[setting.annotation], let wanted = asked(text.trimmingSpaces),
                  !wanted.same(as: given) else { return }
            out.append(InjectionDrift(setting: setting, annotationValue: text, asked: wanted, given: given))
        }
        // A list past the length limit is not compared (reading the annotation reports it).
        func items(_ text: String) -> [String]? { try? IstioArguments.items(text, "an annotation") }
        func ports(_ text: String) -> [UInt16]? {
            guard let list = items(text) else { return nil }
            var out: [UInt16] = []
            for item in list {
                guard let p = UInt16(item.trimmingSpaces), p != 0 else { return nil }
                out.append(p)
            }
            return out
        }
        func ranges(_ text: String) -> Selection<String>? {
            if text == "*" { return .all }
            guard let list = items(text)?.map(\.trimmingSpaces) else { return nil }
            return list.allSatisfy({ CIDR($0) != nil }) ? .some(list) : nil
        }
        compare(.interceptionMode, .mode(config.interceptionMode)) { InterceptionMode(rawValue: $0).map { .mode($0) } }
        compare(.outboundIPRangesInclude, .ranges(config.outboundIPRangesInclude)) { ranges($0).map { .ranges($0) } }
        compare(.outboundIPRangesExclude, .ranges(.some(config.outboundIPRangesExclude))) { t in
            ranges(t).flatMap { $0.isAll ? nil : .ranges($0) }
        }
        compare(.inboundPortsInclude, .ports(config.inboundPortsInclude)) { t in
            t == "*" ? .ports(.all) : ports(t).map { .ports(.some($0)) }
        }
        // The template passes `15090,15021,` and then the annotation's list with the status port added.
        let statusPort = annotations["status.sidecar.istio.io/port"].flatMap { UInt16($0.trimmingSpaces) } ?? IstioPort.status.rawValue
        compare(.inboundPortsExclude, .ports(.some(config.inboundPortsExclude))) { t in
            ports(t).map { listed in
                var all = [IstioPort.metrics.rawValue, IstioPort.health.rawValue] + listed
                if statusPort != 0 { all.append(statusPort) }
                return .ports(.some(all))
            }
        }
        compare(.outboundPortsInclude, .ports(.some(config.outboundPortsInclude))) { ports($0).map { .ports(.some($0)) } }
        compare(.outboundPortsExclude, .ports(.some(config.outboundPortsExclude))) { ports($0).map { .ports(.some($0)) } }
        compare(.excludeInterfaces, .interfaces(config.excludeInterfaces)) { items($0).map { .interfaces($0.map(\.trimmingSpaces)) } }
        return out
    }
}
