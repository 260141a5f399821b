/// Where a generic webhook callback may go: an http(s) URL whose host resolves only to public
/// addresses. Loopback, private, link-local, shared (CGNAT), multicast and unspecified addresses
/// are refused unless configuration allows them (`channels.allow_private_callbacks`), so an API
/// key holder cannot make Switchboard call into its own network (SSRF). The host is resolved on
/// NIO's blocking-I/O thread pool (getaddrinfo blocks), never on an event loop.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOPosix
import SwitchboardCore

public enum CallbackAddress {
    /// Why a callback URL is refused.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    /// The URL's scheme, host and port are usable (http or https, a host, at most 2048 characters).
    public static func parse(_ text: String) throws(Refusal) -> (url: URL, host: String) {
        guard text.count <= 2048, let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              var host = url.host, !host.isEmpty
        else { throw Refusal(reason: "must be an absolute http or https URL of at most 2048 characters") }
        if url.user != nil || url.password != nil { throw Refusal(reason: "must not carry credentials") }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (url, host)
    }

    /// Throws unless every address `text`'s host resolves to is public (or `allowPrivate`).
    public static func check(_ text: String, allowPrivate: Bool) async throws(Refusal) {
        let (_, host) = try parse(text)
        if allowPrivate { return }
        let addresses: [[UInt8]]
        do {
            addresses = try await NIOThreadPool.singleton.runIfActive { try resolve(host) }
        } catch let refusal as Refusal {
            throw refusal
        } catch {
            throw Refusal(reason: "its host could not be resolved")
        }
        guard !addresses.isEmpty else { throw Refusal(reason: "its host has no address") }
        for address in addresses where !isPublic(address) {
            throw Refusal(reason: "resolves to a loopback, private or link-local address, which callbacks may not reach")
        }
    }

    /// Every address of `host` (4 bytes for IPv4, 16 for IPv6). Blocks: call off the event loops.
    static func resolve(_ host: String) throws -> [[UInt8]] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0 else { throw Refusal(reason: "its host could not be resolved") }
        defer { freeaddrinfo(list) }
        var addresses: [[UInt8]] = []
        var cursor = list
        while let info = cursor {
            if let address = info.pointee.ai_addr {
                switch Int32(info.pointee.ai_family) {
                case AF_INET:
                    var v4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                    addresses.append(withUnsafeBytes(of: &v4) { Array($0) })
                case AF_INET6:
                    var v6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    addresses.append(withUnsafeBytes(of: &v6) { Array($0) })
                default:
                    break
                }
            }
            cursor = info.pointee.ai_next
        }
        return addresses
    }

    /// False for loopback, private, link-local, shared, multicast, reserved and unspecified addresses.
    public static func isPublic(_ address: [UInt8]) -> Bool {
        if address.count == 4 {
            let (a, b) = (address[0], address[1])
            if a == 0 || a == 10 || a == 127 || a >= 224 { return false }          // this network, private, loopback, multicast/reserved
            if a == 169 && b == 254 { return false }                               // link-local
            if a == 172 && (16...31).contains(b) { return false }                  // private
            if a == 192 && b == 168 { return false }                               // private
            if a == 100 && (64...127).contains(b) { return false }                 // shared address space (CGNAT)
            if a == 192 && b == 0 && address[2] == 0 { return false }              // IETF protocol assignments
            if a == 198 && (b == 18 || b == 19) { return false }                   // benchmarking
            return true
        }
        guard address.count == 16 else { return false }
        if address.allSatisfy({ $0 == 0 }) { return false }                        // ::
        if address[0..<15].allSatisfy({ $0 == 0 }) && address[15] == 1 { return false } // ::1
        if address[0..<10].allSatisfy({ $0 == 0 }) && address[10] == 0xff && address[11] == 0xff {
            return isPublic(Array(address[12..<16]))                               // ::ffff:a.b.c.d
        }
        if address[0..<12].allSatisfy({ $0 == 0 }) { return isPublic(Array(address[12..<16])) } // ::a.b.c.d (deprecated)
        if address[0] == 0x00 && address[1] == 0x64 && address[2] == 0xff && address[3] == 0x9b {
            return isPublic(Array(address[12..<16]))                               // 64:ff9b::/96 (NAT64)
        }
        if address[0] & 0xfe == 0xfc { return false }                              // unique local fc00::/7
        if address[0] == 0xfe && address[1] & 0xc0 == 0x80 { return false }       // link-local fe80::/10
        if address[0] == 0xfe && address[1] & 0xc0 == 0xc0 { return false }       // site-local (deprecated)
        if address[0] == 0xff { return false }                                     // multicast
        return true
    }
}
