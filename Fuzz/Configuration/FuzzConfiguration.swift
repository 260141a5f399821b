/// libFuzzer target: the configuration loader (YAML through Yams, flattening, typed and validated
/// reads, the production checks) fed arbitrary file contents. Property checked: every input either
/// loads or is refused with a `ConfigError` naming a key; nothing traps.
import SwitchboardConfig

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfiguration(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let source = try ConfigSource(yaml: text, path: "fuzz.yaml", environment: [:], aliases: Settings.aliases)
        _ = try Settings(source: source)
    } catch let error as ConfigError {
        precondition(!error.key.isEmpty, "a configuration error without a key")
    } catch {
        preconditionFailure("not a ConfigError: \(error)")
    }
    return 0
}
