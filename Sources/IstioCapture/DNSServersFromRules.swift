import NetfilterModel

/// The nameservers a pod's DNS-capture rules name. istio-iptables writes one `-d SERVER --dport 53` rule (a
/// REDIRECT to the agent, or a conntrack zone) per resolv.conf nameserver, and `-s SERVER --sport 53` for the
/// answers; so when the pod's resolv.conf is out of reach (a saved dump, a live read without its pid) the rules
/// say which servers it had, instead of the verifier assuming it had none.
public enum DNSServersFromRules {
    public static func servers(in tables: [Table]) -> [String] {
        var found: [String] = []
        for table in tables {
            for chain in table.chains {
                for rule in chain.rules {
                    let dnsTarget: Bool
                    switch rule.target {
                    case .redirect(let r): dnsTarget = r.ports == IstioPort.dnsProxy.rawValue...IstioPort.dnsProxy.rawValue
                    case .ct(let ct): dnsTarget = ct.zone != 0
                    default: dnsTarget = false
                    }
                    guard dnsTarget else { continue }
                    for (address, port) in [(rule.destination, rule.port53(destination: true)), (rule.source, rule.port53(destination: false))] {
                        guard let a = address, port, !a.inverted, a.mask.prefixLength == a.address.family.addressBits else { continue }
                        let text = a.address.description
                        if !found.contains(text) { found.append(text) }
                    }
                }
            }
        }
        return found
    }
}

extension Rule {
    /// Whether a tcp or udp match names port 53 on that side.
    fileprivate func port53(destination: Bool) -> Bool {
        matches.contains { m in
            switch m {
            case .tcp(let t): (destination ? t.destinationPort : t.sourcePort).map { $0.range == IstioNames.dnsPort...IstioNames.dnsPort && !$0.inverted } ?? false
            case .udp(let u): (destination ? u.destinationPort : u.sourcePort).map { $0.range == IstioNames.dnsPort...IstioNames.dnsPort && !$0.inverted } ?? false
            default: false
            }
        }
    }
}
