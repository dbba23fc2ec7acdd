import CaptureVerifier
import IstioCapture
import NetfilterModel
import Testing

/// §13.24: Istio's rules in exactly one backend per family, and the verified tables are that backend's.
@Suite("One backend")
struct BackendTests {
    func verify(read: Backend, populated: [Backend]) throws -> VerificationReport {
        var rules = try ruleset(ipv4: ExampleRules.save(ExampleRules.pod))
        rules.backends = [.ipv4: read]
        rules.populatedBackends = [.ipv4: populated]
        return CaptureVerifier.verify(rules, configuration: ExampleRules.pod)
    }

    @Test("rules in both legacy and nf_tables are a split")
    func split() throws {
        let r = try verify(read: .legacy, populated: [.legacy, .nft])
        #expect(r.errors.map(\.kind) == [.backendSplit])
        #expect(r.errors.first?.message.contains("legacy and nft") == true)
        #expect(try #require(r.result("one-backend")).status == .failed)
    }

    @Test("reading the backend that does not hold the rules is a split too")
    func wrongBackend() throws {
        let r = try verify(read: .legacy, populated: [.nft])
        #expect(r.errors.map(\.kind) == [.backendSplit])
    }

    @Test("one backend holding the rules passes; a saved dump does not apply", arguments: [Backend.legacy, .nft])
    func single(_ backend: Backend) throws {
        let r = try verify(read: backend, populated: [backend])
        #expect(r.ok)
        #expect(try #require(r.result("one-backend")).status == .passed)
        let dump = try verify(read: .text, populated: [.text])
        #expect(try #require(dump.result("one-backend")).status == .notApplicable)
    }
}
