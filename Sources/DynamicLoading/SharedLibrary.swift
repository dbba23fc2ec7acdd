#if canImport(Glibc)
import Glibc
#endif

/// A C library loaded with `dlopen` on first use instead of named on the link line: a binary linked against it
/// does not even start where it is missing (Istio's proxy image, where `observe` runs), though only some reads call
/// it. The one loader (libiptc, libnftables, libyaml); a library is never unloaded once opened.
public struct SharedLibrary: @unchecked Sendable {
    /// Why a library or one of its entry points could not be loaded, in one line that names the library.
    public struct LoadFailure: Error, Sendable {
        public var message: String
    }

    public let soname: String
    private let handle: UnsafeMutableRawPointer

    /// `dlopen(soname, RTLD_NOW | RTLD_LOCAL)`. `installHint` says what to install, and is appended to dlerror's
    /// text (which names the file it looked for).
    public init(_ soname: String, installHint: String) throws(LoadFailure) {
        guard let handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "\(soname): dlopen failed"
            throw LoadFailure(message: "\(reason) (\(installHint))")
        }
        self.soname = soname
        self.handle = handle
    }

    /// `dlsym`, cast to the C header's function-pointer type `F` (the shims' `__typeof__` typedefs).
    public func symbol<F>(_ name: String) throws(LoadFailure) -> F {
        guard let address = dlsym(handle, name) else {
            throw LoadFailure(message: "\(soname) has no \(name)")
        }
        return unsafeBitCast(address, to: F.self)
    }
}
