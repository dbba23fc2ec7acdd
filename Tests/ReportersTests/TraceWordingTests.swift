import CaptureVerifier
import NetfilterModel
import Reporters
import RuleReaders
import Testing

/// The trace's "why" for each rule, worded from the tracer's per-condition results.
@Suite struct TraceWordingTests {
    static let save = """
        *nat
        :PREROUTING ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :ISTIO_OUTPUT - [0:0]
        -A OUTPUT -p tcp -j ISTIO_OUTPUT
        -A ISTIO_OUTPUT -p tcp -m tcp --dport 15020 -j RETURN
        -A ISTIO_OUTPUT ! -o lo -m owner --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
        -A ISTIO_OUTPUT -m mark --mark 0x539/0xfff -j RETURN
        -A ISTIO_OUTPUT -p tcp -m multiport --dports 15000:15010,22 -j RETURN
        -A ISTIO_OUTPUT -p tcp -m set --match-set allow dst -j RETURN
        -A ISTIO_OUTPUT -p tcp -j REDIRECT --to-ports 15001
        COMMIT

        """

    static func trace(_ q: PacketQuery) throws -> String {
        let tables = try SaveTextParser(fileName: "t.save", family: .ipv4).parse(save)
        return TraceText.render(PacketTracer(family: .ipv4, tables: tables).trace(q), source: "t.save")
    }

    @Test("an assumed order of base chains is printed in the text and the JSON, and nothing when there is none")
    func assumedOrder() throws {
        let tables = try SaveTextParser(fileName: "t.save", family: .ipv4).parse(Self.save)
        let q = PacketQuery(direction: .outbound, family: .ipv4, protocolNumber: ProtocolMatch.tcp, destination: IPAddress("10.0.0.1")!,
                            destinationPort: 9080)
        var result = PacketTracer(family: .ipv4, tables: tables).trace(q)
        #expect(result.assumedOrders.isEmpty)
        #expect(!TraceText.render(result, source: "t.save").contains("assumed:"))
        #expect(!TraceJSON.render(result, source: "t.save").contains("\"assumed\""))
        result.assumedOrders = [AssumedOrder(hook: .output, priority: -100, order: ["nat OUTPUT", "inet other out"])]
        #expect(TraceText.render(result, source: "t.save").contains("\n  assumed: nat OUTPUT, inet other out are registered at the OUTPUT hook"))
        let json = TraceJSON.render(result, source: "t.save")
        #expect(json.contains("\"assumed\" : [\n    {\n      \"hook\" : \"OUTPUT\",\n      \"order\" : [\n        \"nat OUTPUT\",\n        \"inet other out\"\n      ],\n      \"priority\" : -100\n    }\n  ]"), "\(json)")
    }

    @Test("given values are stated; a rule that did not match names the conditions that failed")
    func givenValues() throws {
        let text = try Self.trace(PacketQuery(direction: .outbound, family: .ipv4, protocolNumber: ProtocolMatch.tcp,
                                              destination: IPAddress("10.0.0.1")!, destinationPort: 9080, uid: 1000, gid: 1000,
                                              outInterface: "eth0"))
        #expect(text.contains("not matched: dport 9080 ≠ 15020\n"))
        #expect(text.contains("not matched: uid 1000 is not 1337\n"))
        #expect(text.contains("not matched: destination 10.0.0.1 is not in 127.0.0.1/32\n"))
        #expect(text.contains("not matched: mark 0x0 ≠ 0x539/0xfff\n"))
        #expect(text.contains("not matched: dport 9080 not in 15000:15010,22\n"))
        #expect(text.contains("not matched: assumed not to match (-m set not evaluated)\n"))
        #expect(text.contains("matched (protocol tcp) → REDIRECT --to-ports 15001\n"))
    }

    @Test("an unknown field is shown as an example, or without one when every packet of the outcome agrees")
    func unknownValues() throws {
        let text = try Self.trace(PacketQuery(direction: .outbound, family: .ipv4, protocolNumber: ProtocolMatch.tcp,
                                              destination: IPAddress("10.0.0.1")!, destinationPort: 9080))
        // The outcome where the owner is not 1337: every packet of it fails the owner test the same way.
        #expect(text.contains("not matched: uid is not 1337\n"))
        // Where the outcome pins the value (uid 1337 exactly), it is stated.
        #expect(text.contains("matched (output interface is not lo; uid 1337 is 1337) → RETURN\n"))
    }
}
