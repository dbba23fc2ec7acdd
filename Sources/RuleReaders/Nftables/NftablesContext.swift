private import CNftables
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

    init() throws(RuleReaderError) {
        guard let context = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else {
            throw .netlink(request: NftablesContext.request, reason: "libnftables could not open a context (nft_ctx_new)")
        }
        self.context = context
        guard nft_ctx_buffer_output(context) == 0, nft_ctx_buffer_error(context) == 0 else {
            throw .netlink(request: NftablesContext.request, reason: "libnftables could not buffer its output (nft_ctx_buffer_output)")
        }
        // Numeric UIDs, GIDs and ports and no reverse DNS (nft's defaults): no NSS or DNS lookup while reading.
        // Protocol names, ct states and other symbols stay symbolic, as `nft list ruleset` prints them.
        nft_ctx_output_set_flags(context, UInt32(NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE))
    }

    deinit { nft_ctx_free(context) }

    /// What the read asks libnftables, for error messages.
    static let request = "nft list ruleset (libnftables)"

    /// `nft_run_cmd_from_buffer`: runs one nft command and returns what it printed (JSON), copied out of the
    /// context's buffer.
    func run(_ command: String) throws(RuleReaderError) -> [UInt8] {
        errno = 0
        let status = nft_run_cmd_from_buffer(context, command)
        let err = errno
        guard status == 0 else {
            let message = nft_ctx_get_error_buffer(context).map { String(cString: $0) } ?? ""
            let reason = message.split(separator: "\n").first.map(String.init) ?? "failed with status \(status)"
            if err == EPERM || err == EACCES || message.contains("Operation not permitted") {
                throw .insufficientPrivilege(detail: "\(NftablesContext.request): \(reason)")
            }
            throw .netlink(request: NftablesContext.request, reason: reason)
        }
        guard let output = nft_ctx_get_output_buffer(context) else { return [] }
        return Array(UnsafeRawBufferPointer(start: output, count: strlen(output)))
    }

    /// libnftables keeps process-wide state (its one-time initialisation, the interface-name cache that
    /// `nft_run_cmd_from_buffer` releases at the end): one context at a time in the process.
    static func withLibraryLock<T>(_ body: () throws(RuleReaderError) -> T) throws(RuleReaderError) -> T {
        libraryLock.lock()
        defer { libraryLock.unlock() }
        return try body()
    }
}

private let libraryLock = LibraryMutex()

/// A process-wide pthread mutex (an in-process lock: nothing on disk, nothing another process sees).
private final class LibraryMutex: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
}
