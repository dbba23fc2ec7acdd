import ArgumentParser
@testable import IptauditCommands
import Testing

/// The start-up fast path (`IptauditCommand.mainParsingSubcommandFirst`) parses a subcommand on its own. It must
/// accept nothing the full parse rejects and yield the same command; everything else goes to the full parse.
struct SubcommandFirstParseTests {
    static let input = "pod.save"

    /// Command lines the fast path takes: it must produce exactly what the full parse produces.
    static let accepted: [[String]] = [
        ["show"],
        ["show", "--format", "save", "--table", "nat", "--family", "ipv4"],
        ["show", "--format=save", "--input", input, "--input", "-"],
        ["show", "--netns", "/run/netns/pod", "--format", "nft", "--backend", "legacy"],
        ["show", "--"],
        ["verify", "--format", "json", "--no-ipv6"],
        ["verify", "--dns-servers", "10.96.0.10", "--format", "junit", "--pid", "42"],
        ["verify", "--istio-args", "-p 15001 -u 1337 -m REDIRECT", "--input", input],
        ["verify", "--istio-env", "ISTIO_META_DNS_CAPTURE=true", "--istio-version", "1.22.8", "--ipv6"],
        ["trace", "out", "tcp", "10.0.0.1:9080", "--uid", "1000"],
        ["trace", "in", "udp", "[fd00::a]:53", "--input", input],
        ["capture", "-w", "bundle.json", "--netns", "/run/netns/pod"],
        ["expect", "--format", "nft", "--table", "nat"],
    ]

    /// Command lines the full parse must answer (help, version, completion, usage errors, failed validation).
    static let declined: [[String]] = [
        [], ["bogus"], ["help", "show"], ["--version"], ["show", "--version"],
        ["show", "--help"], ["show", "-h"], ["verify", "-h", "--format", "json"], ["trace", "--help"], ["show", "--help-hidden"],
        ["show", "--generate-completion-script", "bash"], ["show", "--experimental-dump-help"],
        ["show", "--format", "bogus"], ["show", "--table"], ["show", "extra"], ["show", "--", "x"],
        ["show", "--netns", "a", "--pid", "3"], ["show", "--pid", "0"], ["verify", "--bundle", "b", "--input", "i"],
        ["verify", "--dns-servers", "nope"], ["trace"], ["trace", "out", "tcp", "nothing:x"], ["capture"],
        ["expect", "--istio-version", "1.x"],
    ]

    static func described(_ command: ParsableCommand) -> String {
        var text = ""
        dump(command, to: &text)
        return text
    }

    @Test(arguments: accepted)
    func theFastPathYieldsWhatTheFullParseYields(arguments: [String]) throws {
        let fast = try #require(IptauditCommand.parsedSubcommandFirst(arguments), "the fast path declined \(arguments)")
        let full = try IptauditCommand.parseAsRoot(arguments)
        #expect(type(of: fast) == type(of: full))
        #expect(Self.described(fast) == Self.described(full))
    }

    @Test(arguments: declined)
    func whatTheFastPathDeclinesGoesToTheFullParse(arguments: [String]) {
        #expect(IptauditCommand.parsedSubcommandFirst(arguments) == nil, "the fast path took \(arguments)")
    }
}
