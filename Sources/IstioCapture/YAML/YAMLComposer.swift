private import CYAML
private import DynamicLoading
import NetfilterModel
private import Glibc

/// Why a YAML stream could not be composed; `line` and `column` are 1-based (0 when libyaml gave no position).
public struct YAMLError: Error, Hashable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var message: String

    public init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        MessageText.line(line > 0 ? "line \(line), column \(column): \(message)" : message)
    }
}

/// Turns text into `YAMLNode` trees, one per document, from libyaml's event stream (`yaml_parser_parse`).
///
/// The composer keeps its own stack instead of recursing, and refuses what would make a tree unreasonable to
/// walk: nesting deeper than `maxDepth` (aliases included) and more than `maxNodes` nodes once every alias is
/// expanded (the "billion laughs"). A duplicate scalar key in one mapping is an error, as it is for kubectl.
/// The caller bounds the input size.
public struct YAMLComposer: Sendable {
    public var maxDepth: Int
    public var maxNodes: Int

    public init(maxDepth: Int = 256, maxNodes: Int = 1_000_000) {
        self.maxDepth = maxDepth
        self.maxNodes = maxNodes
    }

    /// Every document of the stream, in order (`---` separates them); an empty stream has none.
    public func composeAll(_ text: String) throws(YAMLError) -> [YAMLNode] {
        // libyaml wants a non-null pointer even for empty input; the extra NUL is not part of the length.
        var bytes = Array(text.utf8)
        let length = bytes.count
        bytes.append(0)
        let library = try YAMLLibrary.shared.get()
        let result = bytes.withUnsafeBufferPointer { buffer -> Result<[YAMLNode], YAMLError> in
            var parser = yaml_parser_t()
            guard library.parserInitialize(&parser) == 1 else {
                return .failure(YAMLError(line: 0, column: 0, message: "libyaml could not allocate a parser"))
            }
            defer { library.parserDelete(&parser) }
            library.setInputString(&parser, buffer.baseAddress, length)
            var state = ComposeState(limits: self, library: library)
            return Result { () throws(YAMLError) in try state.run(&parser) }
        }
        return try result.get()
    }
}

/// A node being finished, with what the limits need to know about it.
private struct Composed {
    var node: YAMLNode
    /// Nodes in the tree, aliases expanded.
    var size: Int
    /// Levels of collections in the tree (a scalar is 0).
    var height: Int
}

/// A collection whose end event has not come yet.
private struct OpenCollection {
    var isMapping: Bool
    var tag: String?
    var anchor: String?
    var line: Int
    var column: Int
    var items: [YAMLNode] = []
    var pairs: [YAMLNode.Pair] = []
    var pendingKey: YAMLNode?
    var keys: [String: Int] = [:]
    var size = 1
    var height = 1
}

private struct ComposeState {
    let limits: YAMLComposer
    var stack: [OpenCollection] = []
    var anchors: [String: Composed] = [:]
    var documents: [YAMLNode] = []
    var nodes = 0

    private let library: YAMLLibrary

    init(limits: YAMLComposer, library: YAMLLibrary) {
        self.limits = limits
        self.library = library
    }

    mutating func run(_ parser: inout yaml_parser_t) throws(YAMLError) -> [YAMLNode] {
        while true {
            var event = yaml_event_t()
            guard library.parse(&parser, &event) == 1 else { throw Self.parserError(parser) }
            defer { library.eventDelete(&event) }
            let line = Int(event.start_mark.line) + 1, column = Int(event.start_mark.column) + 1
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return documents
            case YAML_DOCUMENT_START_EVENT:
                // Anchors belong to their document.
                anchors = [:]
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: Int(scalar.length)), as: UTF8.self)
                let style: YAMLNode.ScalarStyle
                switch scalar.style {
                case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
                case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
                case YAML_LITERAL_SCALAR_STYLE: style = .literal
                case YAML_FOLDED_SCALAR_STYLE: style = .folded
                default: style = .plain
                }
                let node = YAMLNode(.scalar(text, style: style), tag: Self.string(scalar.tag), line: line, column: column)
                try finish(Composed(node: node, size: 1, height: 0), anchor: Self.string(scalar.anchor))
            case YAML_ALIAS_EVENT:
                let name = Self.string(event.data.alias.anchor) ?? ""
                guard let target = anchors[name] else {
                    throw YAMLError(line: line, column: column, message: "alias *\(name) names no anchor before it in this document")
                }
                try finish(target, anchor: nil, at: (line, column))
            case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                guard stack.count < limits.maxDepth else {
                    throw YAMLError(line: line, column: column, message: InputLimits.exceeded(
                        "nested more than \(limits.maxDepth) levels deep", limit: limits.maxDepth, variable: InputLimits.Variable.nesting))
                }
                let isMapping = event.type == YAML_MAPPING_START_EVENT
                let tag = isMapping ? event.data.mapping_start.tag : event.data.sequence_start.tag
                let anchor = isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor
                stack.append(OpenCollection(isMapping: isMapping, tag: Self.string(tag), anchor: Self.string(anchor),
                                            line: line, column: column))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                let open = stack.removeLast()
                let content: YAMLNode.Content = open.isMapping ? .mapping(open.pairs) : .sequence(open.items)
                let node = YAMLNode(content, tag: open.tag, line: open.line, column: open.column)
                try finish(Composed(node: node, size: open.size, height: open.height), anchor: open.anchor)
            default:
                // Stream start and document end carry nothing a tree needs.
                break
            }
        }
    }

    /// Hands a complete node to its parent (or the document list), counting it against the limits.
    mutating func finish(_ composed: Composed, anchor: String?, at alias: (line: Int, column: Int)? = nil) throws(YAMLError) {
        if let alias {
            // An alias repeats a whole tree: count all of it, and its depth where it lands.
            guard stack.count + composed.height <= limits.maxDepth else {
                throw YAMLError(line: alias.line, column: alias.column,
                                message: "alias expands to more than \(limits.maxDepth) levels of nesting")
            }
            nodes += composed.size
        } else {
            nodes += 1  // a collection's children were counted as they finished
        }
        guard nodes <= limits.maxNodes else {
            throw YAMLError(line: alias?.line ?? composed.node.line, column: alias?.column ?? composed.node.column,
                            message: "more than \(limits.maxNodes) nodes once aliases are expanded")
        }
        if let anchor { anchors[anchor] = composed }
        guard !stack.isEmpty else {
            documents.append(composed.node)
            return
        }
        let top = stack.count - 1
        stack[top].size += composed.size
        stack[top].height = max(stack[top].height, composed.height + 1)
        guard stack[top].isMapping else {
            stack[top].items.append(composed.node)
            return
        }
        guard let key = stack[top].pendingKey else {
            if let text = composed.node.text {
                if let first = stack[top].keys[text] {
                    throw YAMLError(line: composed.node.line, column: composed.node.column,
                                    message: "duplicate key \(MessageText.quoted(text)) in a mapping (first at line \(first))")
                }
                stack[top].keys[text] = composed.node.line
            }
            stack[top].pendingKey = composed.node
            return
        }
        stack[top].pairs.append(YAMLNode.Pair(key: key, value: composed.node))
        stack[top].pendingKey = nil
    }

    static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }

    /// libyaml's reader, scanner or parser error, with its position and the construct it was in.
    static func parserError(_ parser: yaml_parser_t) -> YAMLError {
        let problem = parser.problem.map { String(cString: $0) } ?? "not YAML"
        if parser.error == YAML_MEMORY_ERROR {
            return YAMLError(line: 0, column: 0, message: "libyaml ran out of memory")
        }
        if parser.error == YAML_READER_ERROR {
            let value = parser.problem_value == -1 ? "" : " (\(parser.problem_value))"
            return YAMLError(line: 0, column: 0, message: "\(problem)\(value) at byte \(parser.problem_offset)")
        }
        var message = problem
        if let context = parser.context.map({ String(cString: $0) }) {
            message += " \(context) at line \(parser.context_mark.line + 1), column \(parser.context_mark.column + 1)"
        }
        return YAMLError(line: Int(parser.problem_mark.line) + 1, column: Int(parser.problem_mark.column) + 1, message: message)
    }
}

/// libyaml's entry points, from `dlopen` rather than the link line: only a manifest needs them, and a binary linked
/// against libyaml does not start where it is missing (Istio's proxy image, where `observe` runs). Loaded once,
/// on the first parse; never unloaded.
private struct YAMLLibrary: @unchecked Sendable {
    let parserInitialize: iptaudit_yaml_parser_initialize_fn
    let parserDelete: iptaudit_yaml_parser_delete_fn
    let setInputString: iptaudit_yaml_parser_set_input_string_fn
    let parse: iptaudit_yaml_parser_parse_fn
    let eventDelete: iptaudit_yaml_event_delete_fn
    let emitterInitialize: iptaudit_yaml_emitter_initialize_fn
    let emitterDelete: iptaudit_yaml_emitter_delete_fn
    let emitterSetOutput: iptaudit_yaml_emitter_set_output_fn
    let emitterSetWidth: iptaudit_yaml_emitter_set_width_fn
    let emitterSetUnicode: iptaudit_yaml_emitter_set_unicode_fn
    let emit: iptaudit_yaml_emitter_emit_fn
    let streamStart: iptaudit_yaml_stream_start_event_initialize_fn
    let streamEnd: iptaudit_yaml_stream_end_event_initialize_fn
    let documentStart: iptaudit_yaml_document_start_event_initialize_fn
    let documentEnd: iptaudit_yaml_document_end_event_initialize_fn
    let scalar: iptaudit_yaml_scalar_event_initialize_fn
    let sequenceStart: iptaudit_yaml_sequence_start_event_initialize_fn
    let sequenceEnd: iptaudit_yaml_sequence_end_event_initialize_fn
    let mappingStart: iptaudit_yaml_mapping_start_event_initialize_fn
    let mappingEnd: iptaudit_yaml_mapping_end_event_initialize_fn

    /// The process's one load (a Swift global: initialised once, thread-safely, on first use).
    static let shared: Result<YAMLLibrary, YAMLError> = Result { () throws(YAMLError) in try load() }

    private static func load() throws(YAMLError) -> YAMLLibrary {
        func fail(_ f: SharedLibrary.LoadFailure) -> YAMLError { YAMLError(line: 0, column: 0, message: f.message) }
        let library: SharedLibrary
        do { library = try SharedLibrary(IPTAUDIT_YAML_SONAME, installHint: "install libyaml-0-2 to read manifests or write YAML") } catch { throw fail(error) }
        func symbol<F>(_ name: String) throws(YAMLError) -> F {
            do { return try library.symbol(name) } catch { throw fail(error) }
        }
        return YAMLLibrary(parserInitialize: try symbol("yaml_parser_initialize"), parserDelete: try symbol("yaml_parser_delete"),
                           setInputString: try symbol("yaml_parser_set_input_string"), parse: try symbol("yaml_parser_parse"),
                           eventDelete: try symbol("yaml_event_delete"),
                           emitterInitialize: try symbol("yaml_emitter_initialize"), emitterDelete: try symbol("yaml_emitter_delete"),
                           emitterSetOutput: try symbol("yaml_emitter_set_output"), emitterSetWidth: try symbol("yaml_emitter_set_width"),
                           emitterSetUnicode: try symbol("yaml_emitter_set_unicode"), emit: try symbol("yaml_emitter_emit"),
                           streamStart: try symbol("yaml_stream_start_event_initialize"),
                           streamEnd: try symbol("yaml_stream_end_event_initialize"),
                           documentStart: try symbol("yaml_document_start_event_initialize"),
                           documentEnd: try symbol("yaml_document_end_event_initialize"),
                           scalar: try symbol("yaml_scalar_event_initialize"),
                           sequenceStart: try symbol("yaml_sequence_start_event_initialize"),
                           sequenceEnd: try symbol("yaml_sequence_end_event_initialize"),
                           mappingStart: try symbol("yaml_mapping_start_event_initialize"),
                           mappingEnd: try symbol("yaml_mapping_end_event_initialize"))
    }
}

/// Writes `YAMLNode` trees as YAML text through libyaml's emitter, which owns the quoting and escaping rules.
///
/// A scalar the source quoted (a JSON string) is written plain only where no YAML 1.1 reader could take it for
/// anything else: it must read as a string to go-yaml (`resolvePlain`) and start with a letter or `/`, so PyYAML's
/// sexagesimal integers and timestamps (`10:30`, `2026-11-29`) stay quoted too. Numbers, booleans and null stay plain.
public enum YAMLEmitter {
    public static func emit(_ documents: [YAMLNode]) throws(YAMLError) -> String {
        let library = try YAMLLibrary.shared.get()
        var emitter = yaml_emitter_t()
        guard library.emitterInitialize(&emitter) == 1 else {
            throw YAMLError(line: 0, column: 0, message: "libyaml could not allocate an emitter")
        }
        defer { library.emitterDelete(&emitter) }
        let sink = OutputSink()
        let box = Unmanaged.passRetained(sink)
        defer { box.release() }
        library.emitterSetOutput(&emitter, { data, buffer, size in
            guard let data, let buffer else { return 0 }
            Unmanaged<OutputSink>.fromOpaque(data).takeUnretainedValue().bytes.append(contentsOf: UnsafeBufferPointer(start: buffer, count: size))
            return 1
        }, box.toOpaque())
        library.emitterSetWidth(&emitter, -1)
        library.emitterSetUnicode(&emitter, 1)

        func send(_ initialized: Int32, _ event: inout yaml_event_t) throws(YAMLError) {
            guard initialized == 1 else { throw YAMLError(line: 0, column: 0, message: "libyaml could not allocate an event") }
            // The emitter owns the event from here, emitted or not.
            guard library.emit(&emitter, &event) == 1 else {
                let problem = emitter.problem.map { String(cString: $0) } ?? "unknown problem"
                throw YAMLError(line: 0, column: 0, message: "libyaml could not write YAML: \(problem)")
            }
        }
        func node(_ n: YAMLNode) throws(YAMLError) {
            var event = yaml_event_t()
            switch n.content {
            case .scalar(let text, let style):
                // libyaml wants a non-null pointer even for "": the NUL is not part of the length.
                let bytes = Array(text.utf8) + [0]
                let plainIsSafe = style == .plain || isUnambiguousString(text)
                try bytes.withUnsafeBufferPointer { (b: UnsafeBufferPointer<UInt8>) throws(YAMLError) in
                    try send(library.scalar(&event, nil, nil, b.baseAddress!, Int32(b.count - 1),
                                            plainIsSafe ? 1 : 0, 1, YAML_ANY_SCALAR_STYLE), &event)
                }
            case .sequence(let items):
                try send(library.sequenceStart(&event, nil, nil, 1, YAML_BLOCK_SEQUENCE_STYLE), &event)
                for item in items { try node(item) }
                try send(library.sequenceEnd(&event), &event)
            case .mapping(let pairs):
                try send(library.mappingStart(&event, nil, nil, 1, YAML_BLOCK_MAPPING_STYLE), &event)
                for pair in pairs {
                    try node(pair.key)
                    try node(pair.value)
                }
                try send(library.mappingEnd(&event), &event)
            }
        }
        var event = yaml_event_t()
        try send(library.streamStart(&event, YAML_UTF8_ENCODING), &event)
        for document in documents {
            try send(library.documentStart(&event, nil, nil, nil, 1), &event)
            try node(document)
            try send(library.documentEnd(&event, 1), &event)
        }
        try send(library.streamEnd(&event), &event)
        return String(decoding: sink.bytes, as: UTF8.self)
    }

    /// Whether a string may be written plain and still read back as the same string by YAML 1.1 readers.
    static func isUnambiguousString(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first.properties.isAlphabetic || first == "/" else { return false }
        return YAMLNode.resolvePlain(text) == .string(text)
    }

    private final class OutputSink {
        var bytes: [UInt8] = []
    }
}
