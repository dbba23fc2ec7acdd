import Glibc
import Testing
@testable import NetfilterModel

/// The model formats addresses itself (it has no C dependency); glibc's inet_ntop is the reference.
@Suite struct AddressTests {
    static let ipv6Samples = [
        "::", "::1", "::6", "::127.0.0.53", "::ffff:1.2.3.4", "fd00::", "2001:db8::1", "2001:db8:0:0:1:0:0:1",
        "fe80::1:0:0:0", "1:0:0:2:0:0:0:3", "1:2:3:4:5:6:7:8", "0:0:1::", "fd16:9254:7127:1337:ffff:ffff:ffff:ffff",
        "::ffff:0:1", "::1:2:3:4:5:6", "1::",
    ]

    @Test(arguments: ipv6Samples)
    func ipv6FormatsLikeInetNtop(_ text: String) throws {
        let a = try #require(IPAddress(text))
        #expect(a.family == .ipv6)
        #expect(a.description == inetNtop6(text))
    }

    @Test(arguments: ["0.0.0.0", "127.0.0.6", "10.96.0.10", "255.255.255.255"])
    func ipv4RoundTrips(_ text: String) throws {
        #expect(try #require(IPAddress(text)).description == text)
    }

    @Test(arguments: ["1.2.3", "1.2.3.256", "1..2.3", "::1::", "1:2:3:4:5:6:7:8:9", "12345::", "g::", ""])
    func rejectsMalformedAddresses(_ text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func cidrCanonicalisesAndPrints() throws {
        let m = try #require(AddressMatch("10.1.2.3/8"))
        #expect(m.cidrText == "10.0.0.0/8")
        #expect(try #require(AddressMatch("10.0.0.0/255.0.255.0")).cidrText == "10.0.0.0/255.0.255.0")
        #expect(try #require(AddressMatch("2001:db8::1:0:0:1/64")).cidrText == "2001:db8::/64")
        #expect(try #require(AddressMatch("169.254.7.127")).cidrText == "169.254.7.127/32")
        #expect(AddressMatch("10.0.0.0/33") == nil)
    }

    private func inetNtop6(_ text: String) -> String {
        var addr = in6_addr()
        precondition(inet_pton(AF_INET6, text, &addr) == 1)
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count))
        return String(cString: buf)
    }
}
