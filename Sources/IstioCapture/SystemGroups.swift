#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Group lookups through the C library, as iptables resolves `--gid-owner NAME` when it loads a rule.
public enum SystemGroups {
    /// The GID of a group in this machine's group database (`getgrnam_r`), or nil.
    @Sendable public static func gid(named name: String) -> UInt32? {
        var group = group()
        var result: UnsafeMutablePointer<group>?
        var size = 1024
        while size <= 1 << 20 {
            var buffer = [CChar](repeating: 0, count: size)
            let status = getgrnam_r(name, &group, &buffer, size, &result)
            if status == ERANGE {
                size *= 4
                continue
            }
            guard status == 0, result != nil else { return nil }
            return UInt32(group.gr_gid)
        }
        return nil
    }
}
