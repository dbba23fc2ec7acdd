import ArgumentParser
import NetfilterModel
import Reporters
import RuleReaders

/// `iptaudit show`: print the tables as read, in save syntax, as `iptables -L` lists them, or as JSON.
struct ShowCommand: DirectlyParsable {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print the tables as iptaudit reads them (save syntax, an iptables -L listing, or JSON).")

    enum Format: String, ExpressibleByArgument, CaseIterable { case save, nft, list, json, yaml, dot, mermaid, svg }

    @OptionGroup var source: SourceOptions
    @Option(help: "Which table.") var table: TableChoice = .all
    @Option(help: "Which address family (with --input: also forces the family of the text).") var family: FamilyChoice = .all
    @Option(name: outputFormatNames, help: "save: iptables-save syntax (iptables' tables); nft: native nftables tables as `nft list ruleset` prints them; list: each table exactly as `iptables -L -v -n --line-numbers -t TABLE` (or ip6tables) prints it; json: the normalized model; yaml: the same as YAML; dot, mermaid, svg: the capture graph.") var format: Format = .list
    @Flag(help: "With -o list: end each rule's line with its role in Istio's scheme (`# …`); the text is then no longer iptables'.") var roles = false

    func validate() throws {
        if roles, format != .list { throw ValidationError("--roles annotates -o list only.") }
    }

    // The declarations above for the direct parse (DirectParse.swift); DirectParseTests hold them to ArgumentParser's.
    static let directOptions: [DirectOption<ShowCommand>] = SourceOptions.directOptions.map { $0.lifted({ $0.source }, { $0.source = $1 }) } + [
        .option("--table", as: TableChoice.self) { $0.table = $1 },
        .option("--family", as: FamilyChoice.self) { $0.family = $1 },
        .option("-o", "--output", "--format", as: Format.self) { $0.format = $1 },
        .flag("--roles") { $0.roles = true },
    ]

    static func directDefault() -> ShowCommand {
        var command = ShowCommand()
        command.source = .directDefault
        command.table = .all
        command.family = .all
        command.format = .list
        command.roles = false
        return command
    }

    mutating func validateAll() throws {
        try source.validate()
        try validate()
    }

    func run() throws {
        let request = ReadRequest(tables: table.tables, families: family.families)
        var (ruleset, sourceDescription) = try source.read(request, family: family.forced, policyRouting: false)
        // Native nftables tables have names of their own; --table narrows iptables' tables only.
        ruleset.tables = ruleset.tables.filter {
            (request.tables.contains($0.name) || ($0.nativeFamily != nil && table == .all)) && request.families.contains($0.family)
        }
        warnAboutSplitBackends(ruleset)
        if ruleset.tables.isEmpty {
            printError("iptaudit: no \(table == .all ? "" : table.rawValue + " ")tables with rules found (\(sourceDescription)).")
        }
        switch format {
        case .save: emit(ShowRendering.save(ruleset, source: sourceDescription))
        case .nft: emit(NftSyntax.render(ruleset.nativeTables))
        case .list:
            var annotate: RulesetListing.Annotator?
            if roles { annotate = { IstioRoles.annotate(table: $0, position: $1, rule: $2) } }
            emit(RulesetListing.render(ruleset, annotate: annotate))
        case .json: emit(RulesetJSON.render(ruleset, source: sourceDescription))
        case .yaml: try emitYAML(json: RulesetJSON.render(ruleset, source: sourceDescription))
        case .dot: emit(try GraphOutput.render(.dot, ruleset: ruleset, source: sourceDescription))
        case .mermaid: emit(try GraphOutput.render(.mermaid, ruleset: ruleset, source: sourceDescription))
        case .svg: emit(try GraphOutput.render(.svg, ruleset: ruleset, source: sourceDescription))
        }
        keepUntilExit(ruleset)
    }
}

enum ShowRendering {
    /// Save syntax per family, each family introduced by a comment naming the backend it came from.
    static func save(_ ruleset: Ruleset, source: String) -> TextBuffer {
        // One buffer for every table: a node's table is written in place, not rendered and then copied.
        var out = TextBuffer(reservingCapacity: 4096 + ruleset.tables.reduce(0) { $0 + $1.ruleCount } * 160)
        for family in Family.allCases {
            let tables = ruleset.tables.filter { $0.family == family && $0.nativeFamily == nil }
            guard !tables.isEmpty else { continue }
            let backend = ruleset.backends[family].map(RulesetListing.describe) ?? "unknown backend"
            out.append(contentsOf: "# \(family.saveCommand) — \(backend), \(source)\n")
            for table in tables { SaveSyntax.write(table, to: &out) }
        }
        if !ruleset.nativeTables.isEmpty {
            let names = ruleset.nativeTables.map { "\($0.family.rawValue) \($0.name)" }.joined(separator: ", ")
            out.append(contentsOf: "# native nftables tables (\(names)): iptables-save syntax cannot express them; see -o nft\n")
        }
        return out
    }
}
