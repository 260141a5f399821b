/// SwitchboardConfig owns configuration: reading `config/switchboard.yaml`, applying environment
/// overrides (`SB_<SECTION>_<KEY>`), validating every value with an error that names its key, and
/// refusing placeholder secrets when `SB_ENV=production`. Other modules receive typed settings.
import Foundation
import SwitchboardCore
import Yams

/// A configuration problem, always naming the key (as written in the YAML file) and, where one
/// applies, the environment variable that sets it.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var message: String

    public init(key: String, _ message: String) {
        self.key = key
        self.message = message
    }

    public var description: String {
        "configuration error at '\(key)' (env \(ConfigSource.environmentName(for: key))): \(message)"
    }
}

/// The merged view of one YAML document and the process environment. Values are looked up by
/// dotted key (`redis.url`); the environment wins over the file.
public struct ConfigSource: Sendable {
    /// Flattened YAML scalars and lists, by dotted key. Lists are kept as arrays of strings.
    private let fileValues: [String: ConfigValue]
    /// Raw YAML subtrees (for sections decoded by their owners, such as `gateway`).
    private let sections: [String: JSONValue]
    private let environment: [String: String]
    /// Legacy or conventional names accepted besides `SB_<KEY>` (e.g. WORKER_CONCURRENCY).
    private let aliases: [String: [String]]
    public let path: String?

    enum ConfigValue: Sendable { case scalar(String), list([String]) }

    public init(yaml: String, path: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment, aliases: [String: [String]] = [:]) throws {
        let document: Any?
        do {
            // Yams's `load` traps on a mapping key that is not a string (`? [a]: b`, `{a: 1}: b`):
            // the document's node tree is checked for those first.
            if let node = try Yams.compose(yaml: yaml) { try Self.checkKeys(node, path: "") }
            document = try Yams.load(yaml: yaml)
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError(key: path ?? "<config>", "not valid YAML: \(error)")
        }
        var flat: [String: ConfigValue] = [:]
        var sections: [String: JSONValue] = [:]
        if let document {
            guard let root = document as? [String: Any] else {
                throw ConfigError(key: path ?? "<config>", "the top level must be a mapping of sections")
            }
            try Self.flatten(root, prefix: "", into: &flat)
            for (key, value) in root { sections[key] = JSONValue(yaml: value) }
        }
        self.fileValues = flat
        self.sections = sections
        self.environment = environment
        self.aliases = aliases
        self.path = path
    }

    /// Loads `path` if given, else `SB_CONFIG`, else `config/switchboard.yaml` when it exists;
    /// with no file at all, settings come from defaults and the environment.
    public static func load(path explicitPath: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment, aliases: [String: [String]] = [:]) throws -> ConfigSource {
        let candidate = explicitPath ?? environment["SB_CONFIG"]
        if let candidate {
            guard let text = try? String(contentsOfFile: candidate, encoding: .utf8) else {
                throw ConfigError(key: "SB_CONFIG", "cannot read configuration file \(candidate)")
            }
            return try ConfigSource(yaml: text, path: candidate, environment: environment, aliases: aliases)
        }
        let conventional = "config/switchboard.yaml"
        if let text = try? String(contentsOfFile: conventional, encoding: .utf8) {
            return try ConfigSource(yaml: text, path: conventional, environment: environment, aliases: aliases)
        }
        return try ConfigSource(yaml: "", path: nil, environment: environment, aliases: aliases)
    }

    /// `redis.url` → `SB_REDIS_URL`.
    public static func environmentName(for key: String) -> String {
        "SB_" + key.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    /// Every key present in the file, for detecting typos against the known keys.
    public var fileKeys: Set<String> { Set(fileValues.keys) }

    public func section(_ name: String) -> JSONValue? { sections[name] }

    /// A section's scalars as the environment variables that would set them
    /// (`ai.base_url` → `SB_AI_BASE_URL`), overlaid by the real environment's `SB_<SECTION>_*`.
    /// For modules that read their settings from an environment-style dictionary.
    public func environmentStyle(section name: String) -> [String: String] {
        var values: [String: String] = [:]
        for (key, value) in fileValues where key.hasPrefix(name + ".") {
            if case .scalar(let text) = value { values[Self.environmentName(for: key)] = text }
        }
        let prefix = Self.environmentName(for: name) + "_"
        for (key, value) in environment where key.hasPrefix(prefix) { values[key] = value }
        return values
    }

    func environmentValue(_ key: String) -> (name: String, value: String)? {
        let names = [Self.environmentName(for: key)] + (aliases[key] ?? [])
        for name in names {
            if let value = environment[name] { return (name, value) }
        }
        return nil
    }

    func rawScalar(_ key: String) throws -> String? {
        if let fromEnv = environmentValue(key) { return fromEnv.value }
        switch fileValues[key] {
        case .scalar(let value): return value
        case .list: throw ConfigError(key: key, "expected a single value, found a list")
        case nil: return nil
        }
    }

    func rawList(_ key: String) -> [String]? {
        if let fromEnv = environmentValue(key) {
            return fromEnv.value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        switch fileValues[key] {
        case .scalar(let value): return value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        case .list(let values): return values
        case nil: return nil
        }
    }

    /// Throws when a mapping anywhere in `node` has a key that is not a plain scalar.
    private static func checkKeys(_ node: Node, path: String) throws {
        switch node {
        case .mapping(let mapping):
            for (key, value) in mapping {
                guard case .scalar(let scalar) = key else {
                    throw ConfigError(key: path.isEmpty ? "<config>" : path, "a mapping key must be a plain string, not a list or a mapping")
                }
                try checkKeys(value, path: path.isEmpty ? scalar.string : "\(path).\(scalar.string)")
            }
        case .sequence(let sequence):
            for item in sequence { try checkKeys(item, path: path) }
        default:
            break
        }
    }

    private static func flatten(_ mapping: [String: Any], prefix: String, into flat: inout [String: ConfigValue]) throws {
        for (name, value) in mapping {
            // An empty key (`: x`, or a tag with no name: `!t : x`) names no setting.
            if name.trimmingCharacters(in: .whitespaces).isEmpty {
                throw ConfigError(key: prefix.isEmpty ? "<config>" : prefix, "a mapping key must not be empty")
            }
            let key = prefix.isEmpty ? name : "\(prefix).\(name)"
            switch value {
            case let nested as [String: Any]:
                try flatten(nested, prefix: key, into: &flat)
            case let list as [Any]:
                flat[key] = .list(list.map { scalarText($0) })
            case is NSNull:
                continue
            default:
                flat[key] = .scalar(scalarText(value))
            }
        }
    }

    private static func scalarText(_ value: Any) -> String {
        switch value {
        case let string as String: return string
        case let bool as Bool: return bool ? "true" : "false"
        case let int as Int: return String(int)
        case let double as Double: return String(double)
        default: return String(describing: value)
        }
    }

    // MARK: typed readers

    public func string(_ key: String, default defaultValue: String) throws -> String {
        try rawScalar(key) ?? defaultValue
    }

    public func optionalString(_ key: String) throws -> String? {
        guard let value = try rawScalar(key), !value.isEmpty else { return nil }
        return value
    }

    public func int(_ key: String, default defaultValue: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = try rawScalar(key) else { return defaultValue }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigError(key: key, "expected an integer, got '\(text)'")
        }
        guard range.contains(value) else {
            throw ConfigError(key: key, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    public func double(_ key: String, default defaultValue: Double, range: ClosedRange<Double>) throws -> Double {
        guard let text = try rawScalar(key) else { return defaultValue }
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            throw ConfigError(key: key, "expected a number, got '\(text)'")
        }
        guard range.contains(value) else {
            throw ConfigError(key: key, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    public func bool(_ key: String, default defaultValue: Bool) throws -> Bool {
        guard let text = try rawScalar(key) else { return defaultValue }
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw ConfigError(key: key, "expected true or false, got '\(text)'")
        }
    }

    public func list(_ key: String, default defaultValue: [String]) -> [String] {
        rawList(key) ?? defaultValue
    }

    public func oneOf<T: RawRepresentable & CaseIterable>(_ key: String, default defaultValue: T) throws -> T where T.RawValue == String {
        guard let text = try rawScalar(key) else { return defaultValue }
        guard let value = T(rawValue: text.lowercased()) else {
            let allowed = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigError(key: key, "'\(text)' is not one of: \(allowed)")
        }
        return value
    }
}

extension JSONValue {
    /// A YAML subtree as plain JSON-compatible data, so a module can decode its own section with
    /// `JSONDecoder` (from `jsonData()`) without depending on the YAML library.
    init(yaml: Any) {
        switch yaml {
        case let bool as Bool: self = .bool(bool)
        case let int as Int: self = .int(Int64(int))
        case let double as Double: self = .double(double)
        case let string as String: self = .string(string)
        case let list as [Any]: self = .array(list.map(JSONValue.init(yaml:)))
        case let map as [String: Any]: self = .object(map.mapValues(JSONValue.init(yaml:)))
        default: self = .null
        }
    }

    /// Serialises the subtree as JSON (keys sorted).
    public func jsonData() -> Data {
        Data(serialized.utf8)
    }
}
