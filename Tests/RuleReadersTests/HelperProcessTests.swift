import Foundation
import Testing
@testable import RuleReaders

/// The one process launcher: output drained while input is written, deadlines, a clean child, no $PATH lookup.
@Suite struct HelperProcessTests {
    @Test func inputAndBothOutputsFlowAtOnceWithoutBlocking() throws {
        // 4 MiB through cat while the same program fills stderr: a launcher that wrote all input before reading,
        // or read stdout before stderr, would deadlock on a full pipe.
        let input = (0..<(4 << 20)).map { UInt8(ascii: "a") + UInt8($0 % 26) }
        let script = "cat; head -c 1048576 /dev/zero | tr '\\0' e >&2"
        let out = try HelperProcess.run("sh", ["-c", script], input: input)
        #expect(out.status == 0)
        #expect(Array(out.stdout.utf8) == input)
        #expect(Array(out.stderr.utf8) == [UInt8](repeating: UInt8(ascii: "e"), count: 1 << 20))
    }

    @Test func exitStatusAndSignalsAreReportedAsAShellDoes() throws {
        #expect(try HelperProcess.run("sh", ["-c", "exit 3"]).status == 3)
        #expect(try HelperProcess.run("sh", ["-c", "kill -TERM $$"]).status == 128 + 15)
    }

    @Test func aChildPastItsDeadlineIsKilledAndNamed() throws {
        let marker = NSTemporaryDirectory() + "iptaudit-helper-deadline-\(getpid())"
        defer { unlink(marker) }
        // The child would write the marker after 3 s; the deadline is 0.3 s.
        let error = #expect(throws: RuleReaderError.self) {
            try HelperProcess.run("sh", ["-c", "sleep 3; touch \(marker)"], timeout: 0.3)
        }
        guard case .helper(let command, let reason)? = error else {
            Issue.record("expected a helper error, got \(String(describing: error))")
            return
        }
        #expect(command.hasPrefix("sh -c"))
        #expect(reason.contains("did not finish within 0.3 s and was stopped"))
        #expect(!reason.contains("\n"))
        sleep(4)
        #expect(access(marker, F_OK) != 0, "the timed-out child was killed, so it never wrote its marker")
    }

    @Test func aChildThatClosesItsOutputButKeepsRunningStillMeetsTheDeadline() throws {
        let error = #expect(throws: RuleReaderError.self) {
            try HelperProcess.run("sh", ["-c", "exec >&- 2>&-; sleep 5"], timeout: 0.3)
        }
        #expect(error?.description.contains("did not finish") == true)
    }

    @Test func theChildGetsACleanEnvironmentAndOnlyItsStandardDescriptors() throws {
        // This process has HOME, PATH and whatever the test runner set; none of it may reach the child
        // (the CLI tests show the same for XTABLES_LIBDIR and a fake helper early in PATH).
        #expect(ProcessInfo.processInfo.environment.count > 2)
        let env = try HelperProcess.run("env", [])
        #expect(env.stdout == "PATH=/usr/sbin:/usr/bin:/sbin:/bin\nLC_ALL=C\n")

        // A descriptor this process opened without close-on-exec must not reach the child.
        let leaked = open("/dev/null", O_RDONLY)
        defer { close(leaked) }
        #expect(leaked > 2)
        // ls lists its own descriptors: 0-2, and 3 for the directory it is reading.
        let fds = try HelperProcess.run("ls", ["/proc/self/fd"])
        #expect(fds.stdout == "0\n1\n2\n3\n")
    }

    @Test func helpersAreFoundOnlyInSystemDirectories() throws {
        let fake = NSTemporaryDirectory() + "iptables-nft-save"
        let found = try HelperProcess.locate("iptables-nft-save")
        #expect(found.map { HelperProcess.searchDirectories.contains(($0 as NSString).deletingLastPathComponent) } == true)
        #expect(found != fake)
        #expect(try HelperProcess.locate(fake) == nil, "a path is never taken as a helper name")
        #expect(try HelperProcess.locate("no-such-helper-\(getpid())") == nil)
        let error = #expect(throws: RuleReaderError.self) { try HelperProcess.run("no-such-helper-\(getpid())", []) }
        #expect(error?.description.contains("not installed (looked in /usr/sbin, /usr/bin, /sbin, /bin)") == true)
    }
}

