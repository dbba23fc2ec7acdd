import Foundation
import NetfilterModel
import RuleReaders
import TestSupport
import Testing

/// Option combinations beyond the shared extensions fixture: inversions, port and id ranges, NAT base ports,
/// CONNMARK shifts, CT zones by direction, every REJECT type, conntrack revision 3 ranges, defaults that iptables
/// 1.8.9 prints in its own way (`--packet 0`, `--nflog-threshold`, `--zone-orig 0`).
@Suite("Legacy reader: option edges read back as iptables-legacy-save prints them")
struct LegacyReaderEdgeTests {
    static let ipv4 = """
            *nat
            :E - [0:0]
            -A E -m statistic --mode nth --every 5 --packet 0
            -A E -m statistic --mode random ! --probability 0.25
            -A E -p tcp -j DNAT --to-destination 10.0.0.1:100-200/150
            -A E -p tcp -j DNAT --to-destination :80
            -A E -p tcp -j SNAT --to-source 10.0.0.1-10.0.0.4 --random-fully --persistent
            -A E -p udp -j MASQUERADE --to-ports 1000 --random
            -A E -p tcp -m multiport ! --ports 1:3,7,9:10
            -A E -p tcp -m tcp ! --tcp-option 8 ! --tcp-flags ALL NONE
            -A E -p udp -m udp ! --sport 53:54
            -A E -m mark ! --mark 0x1/0x3
            -A E -m conntrack ! --ctstate NEW --ctorigsrcport 10:20 ! --ctrepldstport 5 --ctdir ORIGINAL ! --ctstatus EXPECTED
            -A E -m conntrack --ctorigdst 10.1.0.0/16 ! --ctreplsrc 10.2.0.0/255.255.0.255 ! --ctproto 17 ! --ctexpire 5
            -A E -m state ! --state INVALID,UNTRACKED
            -A E -m addrtype ! --src-type BLACKHOLE,UNREACHABLE,PROHIBIT --limit-iface-out
            -A E -m owner --uid-owner 0-999 --gid-owner 5-6
            -A E -m connmark ! --mark 0x5
            -A E -j NFLOG --nflog-threshold 1
            -A E -j NFLOG --nflog-threshold 0 --nflog-size 0
            -A E -i eth0 -o wg+ -s 192.168.0.0/16 ! -d 10.0.0.1 -p 132
            -A E ! -f
            COMMIT
            *mangle
            :E - [0:0]
            -A E -j CONNMARK --set-xmark 0x1/0x1 --left-shift-mark 3
            -A E -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff00 --right-shift-mark 8
            -A E -j CONNMARK --save-mark
            -A E -j MARK --set-xmark 0x0/0xffffffff
            -A E -j MARK --and-mark 0xf
            -A E -p tcp -m socket --nowildcard -j TPROXY --on-port 1 --on-ip 127.0.0.1 --tproxy-mark 0x0/0x0
            -A E -j LOG --log-prefix "x'y" --log-level 0
            COMMIT
            *raw
            :E - [0:0]
            -A E -j CT --zone-orig 0
            -A E -j CT --zone 7 --ctevents destroy,mark --expevents new
            -A E -j CT --notrack --zone-reply 65535
            COMMIT
            *filter
            :E - [0:0]
            -A E -j REJECT --reject-with icmp-net-unreachable
            -A E -j REJECT --reject-with icmp-host-unreachable
            -A E -j REJECT --reject-with icmp-proto-unreachable
            -A E -j REJECT --reject-with icmp-net-prohibited
            -A E -m comment --comment "a comment that is exactly as long as it needs to be, with unicode ✓ and $ and *"
            -A E -m mac ! --mac-source 01:02:03:04:05:06
            -A E -g E
            COMMIT

            """
    static let ipv6 = """
            *nat
            :E - [0:0]
            -A E -p tcp -j DNAT --to-destination [fd00::1]:100-200/150
            -A E -p tcp -j DNAT --to-destination [fd00::1-fd00::9]:80
            -A E -p udp -j SNAT --to-source fd00::1-fd00::2 --random
            -A E -p tcp -j REDIRECT --to-ports 15001-15006
            -A E -p udp -j MASQUERADE --random-fully
            -A E -m conntrack --ctorigsrc fd00::/8 ! --ctorigdst ::1 --ctstate DNAT,SNAT
            -A E -p udp -m multiport --dports 1,2
            -A E ! -i veth+ -o eth0 ! -s 2001:db8::/32 -d ::ffff:10.0.0.1 ! -p udp
            -A E -m owner ! --uid-owner 1337 ! --gid-owner 1337 -p tcp
            -A E -j NFLOG --nflog-group 2
            -A E -m statistic --mode nth --every 2 --packet 1
            COMMIT
            *mangle
            :E - [0:0]
            -A E -p tcp -m socket --transparent -j TPROXY --on-port 15006 --on-ip fd00::5 --tproxy-mark 0x1/0x1
            -A E -j LOG --log-uid
            -A E -m mark --mark 0x539 -j CONNMARK --save-mark --mask 0xffff
            COMMIT
            *raw
            :E - [0:0]
            -A E -p udp -m udp --dport 53 -j CT --zone 2
            -A E -j NOTRACK
            COMMIT

            """

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: [Family.ipv4, .ipv6])
    func edgesReadBackIdentically(_ family: Family) throws {
        let ns = try TestNamespace()
        try ns.mustRun([LegacyLive.restoreCommand(family)], stdin: family == .ipv4 ? Self.ipv4 : Self.ipv6)
        let ruleset = try LegacyLive.read(ns, families: [family])
        let compared = try LegacyLive.expectIdenticalToSave(ruleset, in: ns, family: family)
        #expect(compared == (family == .ipv4 ? 4 : 3))
        let unrecognized = ruleset.tables.flatMap(\.chains).flatMap(\.rules).filter { rule in
            if case .unrecognized = rule.target { return true }
            return rule.matches.contains { if case .unrecognized = $0 { true } else { false } }
        }
        #expect(unrecognized.isEmpty, "\(unrecognized)")
    }
}
