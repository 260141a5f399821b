/// Wall-clock seconds, as JWT claims use.
import Foundation

/// Wall-clock seconds, as JWT claims use.
enum Clock {
    static func seconds() -> Int64 { Int64(Date().timeIntervalSince1970) }
}
