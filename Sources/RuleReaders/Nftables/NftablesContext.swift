private import CNftables
private import DynamicLoading
#if canImport(Glibc)
import Glibc
#endif

/// One libnftables context (`nft_ctx_new`), freed with it (`nft_ctx_free` in deinit). The only file that
/// imports `CNftables`.
///
/// `nft_ctx_new(NFT_CTX_DEFAULT)` opens the context's NETLINK_NETFILTER socket at once, in the namespace of the
/// calling thread: create, use and drop a context on one thread (`NetworkNamespace.perform`'s for a pod).
/// Output and errors go to buffers, never to the process's stdout/stderr; output is JSON with handles.
final class NftablesContext {
    private let context: OpaquePointer
    private let library: NftablesLibrary

    init() throws(RuleReaderError) {
        let library = try NftablesLibrary.shared.get()
        guard let context = library.ctxNew(UInt32(NFT_CTX_DEFAULT)) else {
            throw .netlink(request: NftablesContext.request, reason: "libnftables could not open a context (nft_ctx_new)")
        }
        self.context = context
        self.library = library
        guard library.bufferOutput(context) == 0, library.bufferError(context) == 0 else {
            throw .netlink(request: NftablesContext.request, reason: "libnftables could not buffer its output (nft_ctx_buffer_output)")
        }
        // Numeric UIDs, GIDs and ports and no reverse DNS (nft's defaults): no NSS or DNS lookup while reading.
        // Protocol names, ct states and other symbols stay symbolic, as `nft list ruleset` prints them.
        library.outputSetFlags(context, UInt32(NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE))
    }

    deinit { library.ctxFree(context) }

    /// What the read asks libnftables, for error messages.
    static let request = "nft list ruleset (libnftables)"

    /// `nft_run_cmd_from_buffer`: runs one nft command and returns what it printed (JSON), copied out of the
    /// context's buffer.
    func run(_ command: String) throws(RuleReaderError) -> [UInt8] {
        errno = 0
        let status = library.runCommand(context, command)
        let err = errno
        guard status == 0 else {
            let message = library.errorBuffer(context).map { String(cString: $0) } ?? ""
            let reason = message.split(separator: "\n").first.map(String.init) ?? "failed with status \(status)"
            if err == EPERM || err == EACCES || message.contains("Operation not permitted") {
                throw .insufficientPrivilege(detail: "\(NftablesContext.request): \(reason)")
            }
            throw .netlink(request: NftablesContext.request, reason: reason)
        }
        guard let output = library.outputBuffer(context) else { return [] }
        return Array(UnsafeRawBufferPointer(start: output, count: strlen(output)))
    }

    /// libnftables keeps process-wide state (its one-time initialisation, the interface-name cache that
    /// `nft_run_cmd_from_buffer` releases at the end): one context at a time in the process.
    static func withLibraryLock<T>(_ body: () throws(RuleReaderError) -> T) throws(RuleReaderError) -> T {
        try libraryLock.withLock(body)
    }
}

/// libnftables' entry points, loaded with `SharedLibrary` rather than linked: linking it made every start map and
/// relocate it and libnftnl, libxtables, libjansson and libgmp (~1 M instructions, ~1 ms) though only a
/// namespace with native tables ever calls it. Loaded once, on the first such read; never unloaded (the
/// library keeps process-wide state).
private struct NftablesLibrary: @unchecked Sendable {
    let ctxNew: iptaudit_nft_ctx_new_fn
    let ctxFree: iptaudit_nft_ctx_free_fn
    let bufferOutput: iptaudit_nft_ctx_buffer_output_fn
    let bufferError: iptaudit_nft_ctx_buffer_error_fn
    let outputSetFlags: iptaudit_nft_ctx_output_set_flags_fn
    let runCommand: iptaudit_nft_run_cmd_from_buffer_fn
    let outputBuffer: iptaudit_nft_ctx_get_output_buffer_fn
    let errorBuffer: iptaudit_nft_ctx_get_error_buffer_fn

    /// The process's one load (a Swift global: initialised once, thread-safely, on first use).
    static let shared: Result<NftablesLibrary, RuleReaderError> = Result { () throws(RuleReaderError) in try load() }

    private static func load() throws(RuleReaderError) -> NftablesLibrary {
        do throws(SharedLibrary.LoadFailure) {
            let l = try SharedLibrary(IPTAUDIT_NFTABLES_SONAME, installHint: "install libnftables1")
            return NftablesLibrary(
                ctxNew: try l.symbol("nft_ctx_new"), ctxFree: try l.symbol("nft_ctx_free"),
                bufferOutput: try l.symbol("nft_ctx_buffer_output"), bufferError: try l.symbol("nft_ctx_buffer_error"),
                outputSetFlags: try l.symbol("nft_ctx_output_set_flags"), runCommand: try l.symbol("nft_run_cmd_from_buffer"),
                outputBuffer: try l.symbol("nft_ctx_get_output_buffer"), errorBuffer: try l.symbol("nft_ctx_get_error_buffer"))
        } catch {
            throw .netlink(request: request, reason: error.message)
        }
    }

    private static var request: String { NftablesContext.request }
}

private let libraryLock = ProcessMutex()
