import IstioCapture
import Testing

@Suite struct IstioArgumentsTests {
    @Test(arguments: [
        "-p 15002",
        "-p15002",
        "-p=15002",
        "--envoy-port 15002",
        "--envoy-port=15002",
        "istio-iptables --envoy-port=15002",
        "/usr/local/bin/istio-iptables -p 15002",
        "pilot-agent istio-iptables -p '15002'",
    ])
    func shortLongAndAttachedForms(_ text: String) throws {
        let c = try IstioArguments.parse(text)
        #expect(c.proxyPort == 15002)
        #expect(c.inboundCapturePort == 15006)
    }

    @Test func everyRuleShapingFlag() throws {
        let c = try IstioArguments.parse("""
            istio-iptables -p 1 -z 2 -e 3 -u 10,11 -g 20 -m TPROXY -t 0x10 -r 200 -b 80,,443 -d 9,8 \
              -q 7 -o 6,5 -i 10.0.0.0/8,2001:db8::/32 -x 10.1.0.0/16 -k vnet0,vnet1 -c eth9 \
              --redirect-dns --capture-all-dns --drop-invalid --dual-stack --iptables-trace-logging --native-nftables
            """)
        #expect(c.proxyPort == 1)
        #expect(c.inboundCapturePort == 2)
        #expect(c.inboundTunnelPort == 3)
        #expect(c.proxyUIDs == [10, 11])
        #expect(c.proxyGIDs == [20])
        #expect(c.interceptionMode == .tproxy)
        #expect(c.tproxyMark == 16)
        #expect(c.tproxyRouteTable == 200)
        #expect(c.inboundPortsInclude == .some([80, 443]))
        #expect(c.inboundPortsExclude == [9, 8])
        #expect(c.outboundPortsInclude == [7])
        #expect(c.outboundPortsExclude == [6, 5])
        #expect(c.outboundIPRangesInclude == .some(["10.0.0.0/8", "2001:db8::/32"]))
        #expect(c.outboundIPRangesExclude == ["10.1.0.0/16"])
        #expect(c.rerouteVirtualInterfaces == ["vnet0", "vnet1"])
        #expect(c.excludeInterfaces == ["eth9"])
        #expect(c.redirectDNS && c.captureAllDNS && c.dropInvalid && c.dualStack && c.traceLogging && c.nativeNftables)
    }

    @Test func longFlagNames() throws {
        let c = try IstioArguments.parse(arguments: [
            "--inbound-capture-port", "16006", "--inbound-tunnel-port=16008", "--proxy-uid", "1000", "--proxy-gid", "2000",
            "--istio-inbound-interception-mode=REDIRECT", "--istio-inbound-ports", "*", "--istio-local-exclude-ports", "15090",
            "--istio-service-cidr=*", "--istio-service-exclude-cidr", "192.168.0.0/16", "--istio-outbound-ports", "3306",
            "--istio-local-outbound-ports-exclude", "5432", "--kube-virt-interfaces", "net1", "--istio-exclude-interfaces", "net2",
            "--istio-inbound-tproxy-mark", "1400", "--istio-inbound-tproxy-route-table", "140",
        ])
        #expect(c.inboundCapturePort == 16006)
        #expect(c.inboundTunnelPort == 16008)
        #expect(c.proxyUIDs == [1000] && c.proxyGIDs == [2000])
        #expect(c.inboundPortsInclude == .all)
        #expect(c.outboundIPRangesInclude == .all)
        #expect(c.outboundIPRangesExclude == ["192.168.0.0/16"])
        #expect(c.outboundPortsInclude == [3306] && c.outboundPortsExclude == [5432])
        #expect(c.rerouteVirtualInterfaces == ["net1"] && c.excludeInterfaces == ["net2"])
        #expect(c.tproxyMark == 1400 && c.tproxyRouteTable == 140)
    }

    @Test func quotesAndEmptyValues() throws {
        let c = try IstioArguments.parse(#"-i '*' -x "" -b '' -d "15090,15021""#)
        #expect(c.outboundIPRangesInclude == .all)
        #expect(c.outboundIPRangesExclude.isEmpty)
        #expect(c.inboundPortsInclude == .none)
        #expect(c.inboundPortsExclude == [15090, 15021])

        let empty = try IstioArguments.parse(#"-i "" -b * -x '10.0.0.0/8'"#)
        #expect(empty.outboundIPRangesInclude == .none)
        #expect(empty.inboundPortsInclude == .all)
        #expect(empty.outboundIPRangesExclude == ["10.0.0.0/8"])
    }

    @Test func shellEscapes() throws {
        // A backslash-newline continues the line; a backslash makes the next character literal.
        let c = try IstioArguments.parse("istio-iptables -p 15001 \\\n  -i \\* -x \"\" -d 1\\,2")
        #expect(c.outboundIPRangesInclude == .all)
        #expect(c.inboundPortsExclude == [1, 2])
        #expect(throws: IstioCaptureError.unbalancedQuote("-i '*")) { try IstioArguments.parse("-i '*") }
    }

    @Test func booleanValues() throws {
        #expect(try IstioArguments.parse("--redirect-dns=false").redirectDNS == false)
        #expect(try IstioArguments.parse("--redirect-dns=true").redirectDNS == true)
        #expect(try IstioArguments.parse("--drop-invalid=1").dropInvalid == true)
        #expect(throws: IstioCaptureError.invalidValue(flag: "--redirect-dns", value: "yes", reason: "expected true or false")) {
            try IstioArguments.parse("--redirect-dns=yes")
        }
    }

    @Test func gidDefaultsToUID() throws {
        #expect(try IstioArguments.parse("-u 1000670000").proxyGIDs == [1000670000])
        #expect(try IstioArguments.parse("-u 3,4 -g ''").proxyGIDs == [3, 4])
        #expect(try IstioArguments.parse("-u 3 -g 7").proxyGIDs == [7])
        let defaults = try IstioArguments.parse("")
        #expect(defaults.proxyUIDs == [1337] && defaults.proxyGIDs == [1337])
        #expect(try IstioArguments.parse("-u ''").proxyUIDs == [1337])
    }

    @Test func ignoredFlagsDoNotShapeRules() throws {
        // No one release has them all (--restore-format went in 1.24, --reconcile came): the release is not said.
        var unknownRelease = CaptureConfiguration()
        unknownRelease.versionAssumed = true
        let ignored = try IstioArguments.parse("""
            -p 15001 --log_output_level=default:info --run-validation --skip-rule-apply --restore-format=true \
            --force-apply --reconcile --iptables-probe-port 15002 --probe-timeout=5s -n --dry-run --cni-mode \
            --log_as_json --network-namespace /var/run/netns/x --cleanup-only -f
            """, environment: [:], base: unknownRelease)
        #expect(ignored == (try IstioArguments.parse("-p 15001", environment: [:], base: unknownRelease)))
    }

    @Test func unknownFlagsAreNamed() {
        #expect(throws: IstioCaptureError.unknownFlag("--envoy-prot")) { try IstioArguments.parse("--envoy-prot 15001") }
        #expect(throws: IstioCaptureError.unknownFlag("-Z")) { try IstioArguments.parse("-Z 1") }
        #expect(throws: IstioCaptureError.unknownFlag("--bogus")) { try IstioArguments.parse("--bogus=1") }
        #expect(throws: IstioCaptureError.missingValue(flag: "-p/--envoy-port")) { try IstioArguments.parse("-u 1 -p") }
    }

    /// Values istio-iptables' command line accepts and its run rejects: it exits before installing a rule, which is
    /// the configuration's verdict (not a usage error of iptaudit's).
    @Test(arguments: ["-p 70000", "-x '*'", "-i 10.0.0.1", "-b 80,http", "-z 0"])
    func valuesIstioFailsOn(_ text: String) throws {
        let c = try IstioArguments.parse(text)
        #expect(c.installFailure != nil, "\(text)")
        #expect(try IstioArguments.parse("-p 15001").installFailure == nil)
    }

    @Test func namesForIdentitiesAreRefused() {
        // istio-iptables hands them to the owner match, which resolves them in the init image iptaudit cannot see.
        #expect(throws: IstioCaptureError.self) { try IstioArguments.parse("-u istio-proxy") }
    }

    /// Issue 9 item 4: read as pflag and cobra read them, quirks included, each quirk said.
    @Test func quirksAreReadAsIstioReadsThem() throws {
        // `-x -b '*'`: -x takes "-b" (and then fails on it), '*' is a stray word, -b is never set.
        let xb = try IstioArguments.parse("-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x -b '*' -d 15090,15021,15020")
        #expect(xb.inboundPortsInclude == .none)
        #expect(xb.installFailure == IstioCaptureError.invalidValue(flag: "-x/--istio-service-exclude-cidr", value: "-b",
                                                                   reason: "\"-b\" is not an address/prefix-length CIDR").description)
        #expect(xb.argumentQuirks.map(\.words) == [["-x", "-b"], ["*"]])
        #expect(xb.argumentQuirks.map(\.changesSettings) == [true, false])
        #expect(xb.argumentQuirks.first?.effect.contains("-b/--istio-inbound-ports is not set by it (so no inbound port is captured)") == true)

        // A boolean never takes the next word: `--redirect-dns false` turns DNS capture on.
        let dns = try IstioArguments.parse("--redirect-dns false")
        #expect(dns.redirectDNS)
        #expect(dns.argumentQuirks.map(\.words) == [["--redirect-dns", "false"]] && dns.argumentQuirks[0].changesSettings)
        #expect(try IstioArguments.parse("--redirect-dns true").argumentQuirks.map(\.changesSettings) == [false])
        #expect(try IstioArguments.parse("--redirect-dns=false").argumentQuirks.isEmpty)

        // The last of a repeated flag wins; the same value twice is no quirk.
        let twice = try IstioArguments.parse("-b 80 -b 443")
        #expect(twice.inboundPortsInclude == .some([443]))
        #expect(twice.argumentQuirks.map(\.words) == [["-b", "443"]])
        #expect(try IstioArguments.parse("-b 80 -b 80").argumentQuirks.isEmpty)

        // Anything but TPROXY is REDIRECT.
        let none = try IstioArguments.parse("-m NONE")
        #expect(none.interceptionMode == .redirect && none.argumentQuirks.count == 1 && none.installFailure == nil)

        // After `--` nothing is a flag.
        let dashes = try IstioArguments.parse("-p 15001 -- -p 15002")
        #expect(dashes.proxyPort == 15001 && dashes.argumentQuirks.map(\.words) == [["-p", "15002"]])

        // Dry run's flag takes no value: the number after it is a stray word.
        #expect(try IstioArguments.parse("-n 15001").argumentQuirks.map(\.words) == [["15001"]])
        #expect(try IstioArguments.parse("-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15090,15021,15020").argumentQuirks.isEmpty)
    }

    @Test func environmentKnobs() throws {
        var c = try IstioArguments.parse("-p 15001")
        try c.applyEnvironment([
            "ISTIO_META_DNS_CAPTURE": "true", "INVALID_DROP": "True", "ISTIO_DUAL_STACK": "1",
            "ISTIO_OUTBOUND_OWNER_GROUPS": "java,,202", "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "888",
            "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "127.0.0.1/8", "ISTIO_META_DNS_CONNTRACK_ZONE": "true",
            "NATIVE_NFTABLES": "true",
        ])
        #expect(c.redirectDNS && c.dropInvalid && c.dualStack && c.legacyDNSConntrackZones && c.nativeNftables)
        #expect(c.ownerGroupsInclude == .some(["java", "202"]))
        #expect(c.ownerGroupsExclude == ["888"])
        #expect(c.hostIPv4LoopbackCIDR == "127.0.0.1/8")

        // Unparsable booleans are ignored, as istio-iptables ignores them.
        var ignored = CaptureConfiguration()
        try ignored.applyEnvironment(["ISTIO_META_DNS_CAPTURE": "maybe", "ISTIO_OUTBOUND_OWNER_GROUPS": "*"])
        #expect(!ignored.redirectDNS && ignored.ownerGroupsInclude == .all)

        #expect(throws: IstioCaptureError.self) {
            var bad = CaptureConfiguration()
            try bad.applyEnvironment(["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "10.0.0.0/8"])
        }
        #expect(throws: IstioCaptureError.self) {
            var bad = CaptureConfiguration()
            try bad.applyEnvironment(["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "127.0.0.1/7"])
        }
    }

    @Test func flagsWinOverEnvironment() throws {
        let c = try IstioArguments.parse(arguments: ["--redirect-dns=false"], environment: ["ISTIO_META_DNS_CAPTURE": "true"])
        #expect(!c.redirectDNS)
        let fromEnv = try IstioArguments.parse(arguments: [], environment: ["ISTIO_META_DNS_CAPTURE": "true"])
        #expect(fromEnv.redirectDNS)
        // `--native-nftables` is bound to NATIVE_NFTABLES (istio-iptables' BindEnv spelling of the flag).
        #expect(try IstioArguments.parse(arguments: [], environment: ["NATIVE_NFTABLES": "1"]).nativeNftables)
        #expect(try !IstioArguments.parse(arguments: ["--native-nftables=false"], environment: ["NATIVE_NFTABLES": "true"]).nativeNftables)
        #expect(try !IstioArguments.parse(arguments: []).nativeNftables)
    }

    /// A flag the release's istio-iptables does not define makes it refuse to start (each release's flag set);
    /// with the version assumed nothing is claimed.
    @Test func flagsTheReleaseDoesNotHave() throws {
        func parse(_ text: String, _ version: IstioVersion?) throws -> CaptureConfiguration {
            var base = CaptureConfiguration()
            base.istioVersion = version ?? .latest
            base.versionAssumed = version == nil
            return try IstioArguments.parse(text, environment: [:], base: base)
        }
        #expect(try parse("--native-nftables", IstioVersion(1, 26, 8)).installFailure
            == "istio-iptables 1.26.8 has no --native-nftables flag (1.27 and later have it) and refuses to start")
        #expect(try parse("--native-nftables", IstioVersion(1, 27, 0)).installFailure == nil)
        #expect(try parse("--native-nftables", nil).installFailure == nil)
        #expect(try parse("-f -p 15001", IstioVersion(1, 24, 0)).installFailure?.contains("-f/--restore-format") == true)
        #expect(try parse("-f -p 15001", IstioVersion(1, 22, 0)).installFailure == nil)
        #expect(try parse("-c eth1", IstioVersion(1, 10, 6)).installFailure?.contains("1.12 and later") == true)
        #expect(try parse("--dual-stack", IstioVersion(1, 14, 6)).installFailure != nil)
    }
}
