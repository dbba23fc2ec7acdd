/// Fix hints shared by several obligations.
enum Fix {
    static let reinstall = "Reinstall Istio's rules (restart the pod so istio-init or istio-cni programs them again) and find what changed them."
    static let outbound = "Outbound capture follows traffic.sidecar.istio.io/includeOutboundIPRanges (-i), excludeOutboundIPRanges (-x), "
        + "includeOutboundPorts (-q) and excludeOutboundPorts (-o); if those are right, reinstall the rules."
    static let owner = "Make istio-iptables' -u/-g (injector: the proxy UID; istio-cni: the istio-proxy container's "
        + "securityContext runAsUser/runAsGroup) match the identity the proxy really runs as, then reinstall the rules."
    static let inbound = "Inbound capture follows traffic.sidecar.istio.io/includeInboundPorts (-b) and excludeInboundPorts (-d); "
        + "if those are right, reinstall the rules."
    static let dns = "DNS capture follows the proxy's ISTIO_META_DNS_CAPTURE (--redirect-dns, and --capture-all-dns with istio-cni); "
        + "if that is right, reinstall the rules."
    static let tproxy = "TPROXY needs matching -t (mark), -r (route table) and the ip rule/route istio-iptables adds; "
        + "reinstall the rules (sidecar.istio.io/interceptionMode selects the mode)."
}
