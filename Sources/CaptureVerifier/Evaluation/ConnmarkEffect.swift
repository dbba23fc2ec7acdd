import NetfilterModel

/// CONNMARK arithmetic as `xt_CONNMARK` revision 1/2 does it.
enum ConnmarkEffect {
    static func apply(_ c: ConnmarkTarget, mark: UInt32, connmark: UInt32) -> (mark: UInt32, connmark: UInt32) {
        func shift(_ v: UInt32) -> UInt32 {
            guard c.shiftBits > 0 else { return v }
            return c.shiftLeft ? v << UInt32(c.shiftBits) : v >> UInt32(c.shiftBits)
        }
        switch c.mode {
        case .set(let value, let mask):
            return (mark, (connmark & ~mask) ^ value)
        case .save(let nfmask, let ctmask):
            return (mark, (connmark & ~ctmask) ^ shift(mark & nfmask))
        case .restore(let nfmask, let ctmask):
            return ((mark & ~nfmask) ^ shift(connmark & ctmask), connmark)
        }
    }
}
