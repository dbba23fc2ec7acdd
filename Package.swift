// swift-tools-version: 6.0
import PackageDescription

// Generic types are instantiated through their metadata accessors instead of from mangled names: the mangled-name
// path resolves each generic argument's conformances by scanning every protocol-conformance record in the binary
// (~0.3 M instructions a first use), which was a quarter of a pod-sized `show` or `verify` (docs/benchmarks.md).
let startUp: [SwiftSetting] = [.unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"])]

// The release link, for iptaudit and the start-up floor it is benchmarked against (benchmarks/StartupFloor).
// Release links libstdc++ statically (StaticLibstdcxx/libstdc++.so is a linker script naming the
// archive): with the static Swift stdlib, libstdc++.so.6 was the largest library relocated at start-up.
// Only the static stdlib's link asks for -lstdc++; a dynamic-stdlib link never reads the script.
// -static-libgcc: the unwinder from libgcc_eh.a instead of libgcc_s.so.1, so the release binary needs only
// glibc's own files (libgcc_s is another package, absent from glibc-only images).
// --no-export-dynamic: the static stdlib's link exports every symbol of our objects (16,500), and the
// runtime's dladdr of itself at start-up walks them all (0.5 M instructions); nothing looks them up.
// lld, not gold: gold's link asked glibc for 2.36's arc4random (from an archive member nothing calls), so
// the binary would not start under glibc 2.35 (Ubuntu 22.04 images); lld's asks for 2.35 at most.
let releaseLink: [LinkerSetting] = [.unsafeFlags(["-L", Context.packageDirectory + "/Sources/iptaudit/StaticLibstdcxx",
                                                  "-Xclang-linker", "-static-libgcc", "-Xlinker", "--no-export-dynamic",
                                                  "-use-ld=lld"], .when(configuration: .release))]

// Dependencies point at the pure model (NetfilterModel); libiptc, netlink, libnftables and libyaml are each imported by one file only.
let package = Package(
    name: "iptaudit",
    // Linux only in practice; macOS 15 is where Synchronization's Mutex and Atomic begin.
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "iptaudit", targets: ["iptaudit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // SwiftNIO's HTTP/1 codec serves /metrics and /healthz for `--listen` (MetricsServer): no hand-written parser.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // Headers only: the legacy reader loads libip4tc/libip6tc with dlopen when it reads legacy tables, so
        // `observe` (and any read that never touches x_tables) runs where libiptc is not installed.
        .systemLibrary(
            name: "CIPTC",
            providers: [.apt(["libiptc-dev"])]
        ),
        // No library: netlink through glibc's socket calls (NetlinkSocket.swift), so the binary needs only glibc and
        // `observe`, which reads the pod's addresses over netlink, runs in an image without libmnl.
        .systemLibrary(name: "CNetlink"),
        .systemLibrary(
            // Headers only: libyaml is loaded with dlopen when a manifest is parsed (YAMLComposer.swift), so the
            // binary starts in images without it (Istio's proxy image, for `observe`).
            name: "CYAML",
            providers: [.apt(["libyaml-dev"])]
        ),
        // Headers only: libnftables is loaded with dlopen when a namespace holds native tables (NftablesContext.swift).
        .systemLibrary(
            name: "CNftables",
            providers: [.apt(["libnftables-dev"])]
        ),
        // posix_spawn's closefrom action and pidfd_open, for the one process launcher (HelperProcess.swift).
        .systemLibrary(name: "CSpawn"),
        .target(name: "NetfilterModel", swiftSettings: startUp),
        // The one dlopen loader, for the readers' libiptc and libnftables and IstioCapture's libyaml.
        .target(name: "DynamicLoading", swiftSettings: startUp),
        .target(name: "RuleReaders", dependencies: ["NetfilterModel", "DynamicLoading", "CIPTC", "CNetlink", "CSpawn", "CNftables"],
                swiftSettings: startUp),
        .target(name: "IstioCapture", dependencies: ["NetfilterModel", "DynamicLoading", "CYAML"], swiftSettings: startUp),
        // The scrape endpoint: knows HTTP and an audit closure returning exposition text, nothing of Istio or netfilter.
        .target(
            name: "MetricsServer",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: startUp
        ),
        .target(name: "CaptureVerifier", dependencies: ["NetfilterModel", "IstioCapture"], swiftSettings: startUp),
        .target(name: "Reporters", dependencies: ["NetfilterModel", "IstioCapture", "CaptureVerifier"], swiftSettings: startUp),
        .target(
            name: "IptauditCommands",
            dependencies: [
                "NetfilterModel", "RuleReaders", "IstioCapture", "CaptureVerifier", "Reporters", "MetricsServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: startUp
        ),
        .executableTarget(
            name: "iptaudit",
            dependencies: ["IptauditCommands"],
            exclude: ["StaticLibstdcxx"],
            swiftSettings: startUp,
            linkerSettings: releaseLink
        ),
        // A program that prints one line, linked as iptaudit: what starting any Swift tool costs (benchmarks/bench.py).
        .executableTarget(name: "StartupFloor", path: "benchmarks/StartupFloor", linkerSettings: releaseLink),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .target(name: "CorpusSupport", dependencies: ["TestSupport", "IstioCapture", "NetfilterModel", "RuleReaders"], path: "Tests/CorpusSupport"),
        .testTarget(name: "NetfilterModelTests", dependencies: ["TestSupport", "NetfilterModel"]),
        .testTarget(name: "ReportersTests", dependencies: ["TestSupport", "CorpusSupport", "Reporters", "CaptureVerifier", "IstioCapture", "NetfilterModel", "RuleReaders"]),
        .testTarget(name: "CaptureVerifierTests", dependencies: ["TestSupport", "CorpusSupport", "CaptureVerifier", "IstioCapture", "NetfilterModel", "RuleReaders"]),
        .testTarget(name: "IstioCaptureTests", dependencies: ["TestSupport", "CorpusSupport", "IstioCapture", "NetfilterModel"]),
        .testTarget(name: "IntegrationTests", dependencies: ["TestSupport", "CorpusSupport", "RuleReaders", "IstioCapture", "NetfilterModel", "CaptureVerifier", "MetricsServer"]),
        .testTarget(name: "IptauditCommandsTests", dependencies: ["TestSupport", "IptauditCommands", "MetricsServer", "RuleReaders", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "RuleReadersTests", dependencies: ["TestSupport", "RuleReaders", "NetfilterModel"]),
    ]
)
