import ArgumentParser
import CaptureVerifier
import NetfilterModel
import Reporters
import RuleReaders

/// `iptaudit trace`: follow one packet through the tables, rule by rule, as the kernel would, and say where
/// the connection ends up. Fields left out are unknown: every outcome they allow is shown with its condition.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Follow one packet through raw, mangle and nat, rule by rule, and say where the connection ends up.",
        discussion: """
            Examples:
              iptaudit trace out tcp 10.0.0.1:9080 --uid 1000
              iptaudit trace in tcp 10.1.2.3:8080 --from 10.9.9.9 --iif eth0
              iptaudit trace out udp [fd00::a]:53 --input pod.ip6tables.save

            `out` is a packet the pod sends (raw → mangle → nat OUTPUT, then back in on lo when it is routed to the \
            pod itself); `in` is one arriving from the network (raw → mangle → nat PREROUTING). What you leave out \
            (uid, gid, source, interface, ports) is unknown, and every outcome it allows is shown with the condition \
            that leads to it. Without --oif a loopback destination, and on a live read one of the namespace's own \
            addresses, goes out lo, and any other out an interface that is not lo. The conntrack state, mark and \
            connmark default to a new connection's (NEW, 0, 0).

            Exit codes: 0 traced (trace is informational), 2 could not read or parse the rules, 64 usage.
            """)

    enum Direction: String, ExpressibleByArgument, CaseIterable { case out, `in` }
    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json, yaml }

    @Argument(help: "out: a packet the pod sends; in: a packet arriving from the network.")
    var direction: Direction

    @Argument(help: ArgumentHelp("tcp, udp, icmp, or a protocol number.", valueName: "protocol"))
    var protocolName: String

    @Argument(help: ArgumentHelp("Destination ADDR:PORT ([ADDR]:PORT for IPv6; ADDR alone leaves the port unknown).", valueName: "destination"))
    var destination: String

    @Option(name: .customLong("from"), help: ArgumentHelp("Source address, optionally with its port.", valueName: "addr[:port]"))
    var from: String?

    @Option(help: ArgumentHelp("Socket owner UID (out only).", valueName: "uid"))
    var uid: UInt32?

    @Option(help: ArgumentHelp("Socket owner GID (out only).", valueName: "gid"))
    var gid: UInt32?

    @Option(help: ArgumentHelp("Source port.", valueName: "port"))
    var sport: UInt16?

    @Option(help: ArgumentHelp("Output interface (out only).", valueName: "name"))
    var oif: String?

    @Option(help: ArgumentHelp("Input interface (in only).", valueName: "name"))
    var iif: String?

    @Option(help: ArgumentHelp("Packet mark (decimal or 0x hex); default 0.", valueName: "value"))
    var mark: String?
    @Option(help: ArgumentHelp("Connection mark (decimal or 0x hex); default 0 (ambient: 0x111 marks connections ztunnel delivered).", valueName: "value"))
    var connmark: String?

    @Option(help: ArgumentHelp("Conntrack state: NEW (default), ESTABLISHED, RELATED, INVALID, UNTRACKED.", valueName: "state"))
    var ctstate: String?

    @Option(help: "Address family (normally from the destination address).")
    var family: FamilyChoice?

    @Option(name: outputFormatNames, help: "text: the walk for people; json: verdict, steps and outcomes; yaml: the same as YAML.")
    var format: Format = .text
    @OptionGroup var color: ColorOption

    @OptionGroup var source: SourceOptions

    func validate() throws { _ = try query() }

    /// The packet description, or a usage error naming the bad argument.
    func query() throws -> PacketQuery {
        let (dst, dport) = try TraceCommand.endpoint(destination, what: "destination")
        var fam = dst.family
        if let family {
            guard let forced = family.forced else { throw ValidationError("--family: give ipv4 or ipv6 for a trace") }
            guard forced == dst.family else {
                throw ValidationError("--family \(family.rawValue) does not match the destination \(dst) (\(dst.family.rawValue))")
            }
            fam = forced
        }
        let proto = try TraceCommand.protocolNumber(protocolName, family: fam)
        let hasPorts = [6, 17, 33, 132, 136].contains(proto)
        var src: IPAddress?
        var srcPort = sport
        if let from {
            let (a, p) = try TraceCommand.endpoint(from, what: "--from")
            guard a.family == fam else { throw ValidationError("--from \(a) is \(a.family.rawValue), the destination is \(fam.rawValue)") }
            src = a
            if let p {
                if let sport, sport != p { throw ValidationError("--from gives port \(p) and --sport \(sport): give one") }
                srcPort = p
            }
        }
        if !hasPorts, dport != nil || srcPort != nil {
            throw ValidationError("\(protocolName) has no ports: give the destination without :PORT and no --sport")
        }
        let outbound = direction == .out
        if !outbound {
            if uid != nil || gid != nil { throw ValidationError("--uid/--gid describe the socket of a packet the pod sends: only with `out`") }
            if oif != nil { throw ValidationError("--oif is for `out`; an arriving packet has an input interface (--iif)") }
        } else if iif != nil {
            throw ValidationError("--iif is for `in`; a packet the pod sends has an output interface (--oif)")
        }
        for (name, value) in [("--oif", oif), ("--iif", iif)] {
            if let v = value, v.isEmpty || v.count > 15 || v.contains(where: { $0 == " " || $0 == "/" }) {
                throw ValidationError("\(name): '\(v)' is not an interface name")
            }
        }
        func markNumber(_ text: String?, _ flag: String) throws -> UInt32 {
            guard let text else { return 0 }
            let m = text.lowercased()
            guard let v = m.hasPrefix("0x") ? UInt32(m.dropFirst(2), radix: 16) : UInt32(m) else {
                throw ValidationError("\(flag): expected a number like 0x539 or 1337, got '\(text)'")
            }
            return v
        }
        let markValue = try markNumber(mark, "--mark")
        let connmarkValue = try markNumber(connmark, "--connmark")
        var state = ConntrackState.new
        if let ctstate {
            guard let s = ConntrackState(rawValue: ctstate.uppercased()) else {
                throw ValidationError("--ctstate: expected one of \(ConntrackState.allCases.map(\.rawValue).joined(separator: ", ")), got '\(ctstate)'")
            }
            state = s
        }
        return PacketQuery(direction: outbound ? .outbound : .inbound, family: fam, protocolNumber: proto,
                           destination: dst, destinationPort: dport, source: src, sourcePort: srcPort,
                           uid: uid, gid: gid, inInterface: iif, outInterface: oif,
                           mark: markValue, connmark: connmarkValue, state: state)
    }

    func run() throws {
        var q = try query()
        // Live, the namespace's own addresses are known: a packet to one of them goes out lo (`ip route get`
        // says `local … dev lo`), not out eth0. Saved rules carry no addresses; there --oif lo says so.
        if q.direction == .outbound, q.outInterface == nil, source.inputs.isEmpty, source.bundle == nil,
           let own = try? NodeNamespaces.addresses(namespacePath: source.namespacePath) {
            q.destinationIsLocal = own.contains { $0.address == q.destination }
        }
        let request = ReadRequest(tables: [.raw, .mangle, .nat], families: [q.family])
        // The family of saved text is detected from its content; the request keeps only the traced family.
        let (ruleset, sourceDescription) = try source.read(request, family: nil, policyRouting: false)
        warnAboutSplitBackends(ruleset)
        let tables = ruleset.tables.filter { $0.family == q.family }
        if tables.isEmpty {
            printError("iptaudit: no \(q.family.rawValue) raw, mangle or nat tables found (\(sourceDescription)): nothing is installed, the packet passes untouched.")
        }
        let result = PacketTracer(family: q.family, tables: tables).trace(q)
        switch format {
        case .text:
            emit(TraceText.render(result, source: sourceDescription, style: .init(color: color.onStandardOutput)))
        case .json:
            emit(TraceJSON.render(result, source: sourceDescription))
        case .yaml:
            try emitYAML(json: TraceJSON.render(result, source: sourceDescription))
        }
    }

    /// `10.0.0.1:9080`, `10.0.0.1`, `[fd00::1]:8080`, `fd00::1`.
    static func endpoint(_ text: String, what: String) throws -> (IPAddress, UInt16?) {
        func port(_ s: Substring) throws -> UInt16 {
            guard let p = UInt16(s) else { throw ValidationError("\(what): '\(s)' is not a port (0-65535) in '\(text)'") }
            return p
        }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw ValidationError("\(what): missing ']' in '\(text)'") }
            let inner = text[text.index(after: text.startIndex)..<close]
            guard let a = IPAddress(inner), a.family == .ipv6 else { throw ValidationError("\(what): '\(inner)' is not an IPv6 address") }
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return (a, nil) }
            guard rest.hasPrefix(":") else { throw ValidationError("\(what): expected [ADDR]:PORT, got '\(text)'") }
            return (a, try port(rest.dropFirst()))
        }
        if let a = IPAddress(text) { return (a, nil) }
        let colons = text.filter { $0 == ":" }.count
        if colons == 1, let i = text.firstIndex(of: ":") {
            guard let a = IPAddress(text[..<i]), a.family == .ipv4 else {
                throw ValidationError("\(what): '\(text[..<i])' is not an IPv4 address")
            }
            return (a, try port(text[text.index(after: i)...]))
        }
        throw ValidationError("\(what): expected ADDR:PORT, ADDR, or [IPv6]:PORT, got '\(text)'")
    }

    static func protocolNumber(_ name: String, family: Family) throws -> UInt16 {
        let n = name.lowercased()
        if n == "icmp", family == .ipv6 { return 58 }
        if let v = UInt16(n), v <= 255 { return v }
        if let v = SaveSyntax.protocolNumber(n) { return v }
        throw ValidationError("protocol: expected tcp, udp, icmp or a number 0-255, got '\(name)'")
    }
}
