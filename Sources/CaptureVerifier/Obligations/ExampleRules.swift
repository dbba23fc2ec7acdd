import IstioCapture
import NetfilterModel

/// Rule sets the obligations' examples start from: what istio-iptables installs for a configuration
/// (from `ExpectedRules`, rendered as iptables-save prints it), edited line by line into broken variants.
public enum ExampleRules {
    /// The sidecar injector's defaults (`-b '*' -d 15090,15021,15020 -i '*'`), current shape.
    public static var pod: CaptureConfiguration { .injectorDefault }

    /// The injector defaults with DNS capture of every port-53 packet, as istio-cni configures it.
    public static var dnsPod: CaptureConfiguration {
        var c = CaptureConfiguration.injectorDefault
        c.redirectDNS = true
        c.captureAllDNS = true
        return c
    }

    /// The injector defaults in TPROXY mode.
    public static var tproxyPod: CaptureConfiguration {
        var c = CaptureConfiguration.injectorDefault
        c.interceptionMode = .tproxy
        return c
    }

    /// The injector defaults on a dual-stack pod.
    public static var dualStackPod: CaptureConfiguration {
        var c = CaptureConfiguration.injectorDefault
        c.ipv6Enabled = true
        return c
    }

    /// An ambient pod with the node agent's defaults (DNS capture on), current rules.
    public static var ambientPod: CaptureConfiguration {
        var c = CaptureConfiguration()
        c.istioVersion = IstioVersion(1, 29, 0)
        c.ambient = AmbientSettings()
        return c
    }

    /// An ambient pod that bypasses inbound capture (`ambient.istio.io/bypass-inbound-capture: "true"`).
    public static var ambientIngressPod: CaptureConfiguration {
        var c = ambientPod
        c.ambient?.bypassInboundCapture = true
        return c
    }

    /// An ambient pod with DNS capture off (`ambient.istio.io/dns-capture: "false"`).
    public static var ambientNoDNSPod: CaptureConfiguration {
        var c = ambientPod
        c.ambient?.podDNSCapture = false
        return c
    }

    /// An ambient pod with a virtual interface `net1` (`istio.io/reroute-virtual-interfaces: net1`).
    public static var ambientVirtualPod: CaptureConfiguration {
        var c = ambientPod
        c.ambient?.virtualInterfaces = ["net1"]
        return c
    }

    /// `iptables-save` text of what Istio installs for a configuration, for one family.
    public static func save(_ config: CaptureConfiguration, family: Family = .ipv4) -> String {
        ExpectedRules.tables(for: config, family: family, groupResolver: { UInt32($0) })
            .map { SaveSyntax.render($0) }.joined()
    }

    /// An example whose rules are what Istio installs for `config`, edited by `edit`.
    static func example(_ name: String, _ config: CaptureConfiguration, _ expectation: ObligationExample.Expectation,
                        ipv4 edit: (String) -> String = { $0 }, ipv6 edit6: ((String) -> String)? = nil) -> ObligationExample {
        let v6 = config.ipv6Enabled ? (edit6 ?? { $0 })(save(config, family: .ipv6)) : nil
        return ObligationExample(name, configuration: config, ipv4: edit(save(config)), ipv6: v6, expectation)
    }
}

extension String {
    /// The text with `edit` applied to one table's block (`*nat` ... `COMMIT`) only; ambient's chains have the
    /// same names in several tables.
    func inTable(_ table: String, _ edit: (String) -> String) -> String {
        let lines = split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let start = lines.firstIndex(of: "*\(table)"),
              let end = lines[(start + 1)...].firstIndex(of: "COMMIT") else { return self }
        let body = edit(lines[(start + 1)..<end].joined(separator: "\n"))
        return (lines[...start] + [body] + lines[end...]).joined(separator: "\n")
    }
    /// The text without the line (exactly as written); unchanged if absent, which makes a failing example pass
    /// and its test fail.
    func removingLine(_ line: String) -> String {
        split(separator: "\n", omittingEmptySubsequences: false).filter { $0 != line }.joined(separator: "\n")
    }
    /// The text with one line replaced.
    func replacingLine(_ line: String, with replacement: String) -> String {
        split(separator: "\n", omittingEmptySubsequences: false).map { $0 == line ? Substring(replacement) : $0 }
            .joined(separator: "\n")
    }
    /// The text with a line inserted before the first occurrence of another.
    func inserting(_ newLine: String, before line: String) -> String {
        var lines = split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if let i = lines.firstIndex(of: line) { lines.insert(newLine, at: i) }
        return lines.joined(separator: "\n")
    }
    /// The text with a line inserted after the first occurrence of another.
    func inserting(_ newLine: String, after line: String) -> String {
        var lines = split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if let i = lines.firstIndex(of: line) { lines.insert(newLine, at: i + 1) }
        return lines.joined(separator: "\n")
    }
    /// The save text as istio-iptables leaves it when it runs a second time without cleaning up: each table's
    /// rules appended once more.
    var installedTwice: String {
        var out: [String] = []
        var rules: [String] = []
        for line in split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("*") { rules = [] }
            if line == "COMMIT" { out += rules }
            if line.hasPrefix("-A ") { rules.append(line) }
            out.append(line)
        }
        return out.joined(separator: "\n")
    }

    /// The text with a line moved to just after another.
    func movingLine(_ line: String, after anchor: String) -> String {
        removingLine(line).inserting(line, after: anchor)
    }
}
