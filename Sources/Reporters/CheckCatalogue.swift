import CaptureVerifier
import NetfilterModel

/// `iptaudit checks`: every obligation the verifier proves and every finding kind it reports, each with the docs
/// section that explains it. Pure: the lists come from CaptureVerifier's own declarations.
public enum CheckCatalogue {
    public static func text(obligations: [ObligationDescription], kinds: [FindingKind]) -> String {
        var out = "Obligations (\(obligations.count)) — what verify proves over every packet of its classes\n"
        let idWidth = obligations.map(\.id.rawValue.count).max() ?? 0
        for o in obligations.sorted(by: { $0.invariant < $1.invariant }) {
            out += "  " + pad("\(o.invariant)", 3) + pad(o.id.rawValue, idWidth + 2) + o.title + "\n"
            out += "  " + String(repeating: " ", count: idWidth + 5) + "reports " + o.kinds.map(\.rawValue).joined(separator: ", ")
                + "; " + o.id.documentation + "\n"
        }
        out += "\nFinding kinds (\(kinds.count))\n"
        let kindWidth = kinds.map(\.rawValue.count).max() ?? 0
        for k in kinds {
            out += "  " + pad(k.rawValue, kindWidth + 2) + k.summary + "\n"
            out += "  " + String(repeating: " ", count: kindWidth + 2) + k.documentation + "\n"
        }
        return out
    }

    public static func json(obligations: [ObligationDescription], kinds: [FindingKind]) -> String {
        RulesetJSON.encode(Document(
            schemaVersion: 1,
            obligations: obligations.sorted { $0.invariant < $1.invariant }.map {
                ObligationDoc(id: $0.id.rawValue, invariant: $0.invariant, title: $0.title, kinds: $0.kinds.map(\.rawValue),
                              quantifiesOver: $0.quantifiesOver, documentation: $0.id.documentation)
            },
            kinds: kinds.map { KindDoc(kind: $0.rawValue, summary: $0.summary, documentation: $0.documentation) }))
    }

    struct Document: Encodable {
        var schemaVersion: Int
        var obligations: [ObligationDoc]
        var kinds: [KindDoc]
    }

    struct ObligationDoc: Encodable {
        var id: String
        var invariant: Int
        var title: String
        var kinds: [String]
        var quantifiesOver: [String]
        var documentation: String
    }

    struct KindDoc: Encodable {
        var kind: String
        var summary: String
        var documentation: String
    }

    private static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }
}
