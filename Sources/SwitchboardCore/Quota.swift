/// Per-user quotas: how many messages a day and how many provider tokens a month a user may
/// spend (nil or 0: no limit), and when each window starts again (UTC days and months).
import Foundation

public struct QuotaLimits: Sendable, Equatable, Codable {
    public var messagesPerDay: Int?
    public var tokensPerMonth: Int?

    public init(messagesPerDay: Int? = nil, tokensPerMonth: Int? = nil) {
        self.messagesPerDay = messagesPerDay
        self.tokensPerMonth = tokensPerMonth
    }

    public static let unlimited = QuotaLimits()

    /// `override`'s limits where it sets one, else these (the configured defaults).
    public func overridden(by override: QuotaLimits?) -> QuotaLimits {
        QuotaLimits(
            messagesPerDay: override?.messagesPerDay ?? messagesPerDay, tokensPerMonth: override?.tokensPerMonth ?? tokensPerMonth)
    }
}

/// The windows quotas count in: the UTC day and the UTC month around `now`.
public struct QuotaWindows: Sendable, Equatable {
    public var dayStart: Date
    public var nextDay: Date
    public var monthStart: Date
    public var nextMonth: Date

    public init(now: Date) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        dayStart = calendar.startOfDay(for: now)
        nextDay = calendar.date(byAdding: .day, value: 1, to: dayStart)!
        let parts = calendar.dateComponents([.year, .month], from: now)
        monthStart = calendar.date(from: parts)!
        nextMonth = calendar.date(byAdding: .month, value: 1, to: monthStart)!
    }
}
