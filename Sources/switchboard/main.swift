/// The `switchboard` executable: one binary, a subcommand per role. It only parses arguments;
/// assembly lives in SwitchboardApp so tests can build the same pieces.
import ArgumentParser
import Foundation
import SwitchboardApp
import SwitchboardConfig
import SwitchboardCore

@main
struct Switchboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "Self-hosted message routing for AI chat.",
        version: SwitchboardVersion.current,
        subcommands: [
            Serve.self, API.self, Worker.self, Gateway.self, Migrate.self, Version.self, Token.self, Jobs.self, Users.self, Keys.self, Files.self,
        ]
    )
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default: $SB_CONFIG, else config/switchboard.yaml if present).")
    var config: String?

    func settings() throws -> Settings {
        do {
            return try Settings.load(path: config)
        } catch let error as ConfigError {
            throw ValidationError(error.description)
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run every role (api, worker, gateway) in one process.")
    @OptionGroup var options: ConfigOption
    func run() async throws { try await Launcher.run(roles: [.api, .worker, .gateway], settings: options.settings()) }
}

struct API: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "api", abstract: "Run the HTTP API (REST, SSE, webhooks, pages).")
    @OptionGroup var options: ConfigOption
    func run() async throws { try await Launcher.run(roles: [.api], settings: options.settings()) }
}

struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a queue worker (ai, extract, index, delivery).")
    @OptionGroup var options: ConfigOption
    func run() async throws { try await Launcher.run(roles: [.worker], settings: options.settings()) }
}

struct Gateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the realtime WebSocket gateway (Centrifugo protocol).")
    @OptionGroup var options: ConfigOption
    func run() async throws { try await Launcher.run(roles: [.gateway], settings: options.settings()) }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply database migrations and exit.")
    @OptionGroup var options: ConfigOption
    func run() async throws {
        let applied = try await AdminCommands.migrate(settings: options.settings())
        print(applied.isEmpty ? "schema is up to date" : "applied migrations: \(applied.map(String.init).joined(separator: ", "))")
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("switchboard \(SwitchboardVersion.current)") }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Mint a gateway JWT (HS256) for testing.")
    @OptionGroup var options: ConfigOption
    @Option(help: "User id (the token's sub claim).") var user: String
    @Option(help: "Mint a subscription token for this channel instead of a connection token.") var channel: String?
    @Option(help: "A channel the connection is subscribed to by the server (the token's channels claim; repeatable). What a client of /connection/uni_websocket receives.")
    var subscribe: [String] = []
    @Option(help: "Lifetime in seconds (every token expires).") var ttl: Int = 3600

    func validate() throws {
        if ttl <= 0 { throw ValidationError("--ttl must be positive") }
        if channel != nil, !subscribe.isEmpty { throw ValidationError("--subscribe goes in a connection token, not with --channel") }
    }

    func run() async throws {
        print(try AdminCommands.mintToken(settings: options.settings(), user: user, channel: channel, channels: subscribe, ttl: ttl))
    }
}

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Inspect and manage queued jobs.", subcommands: [Failed.self])

    struct Failed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Jobs that used up their attempts.",
            subcommands: [List.self, Retry.self, Purge.self]
        )

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List failed jobs, newest first.")
            @OptionGroup var options: ConfigOption
            @Option(help: "At most this many.") var limit = 50
            func run() async throws {
                for line in try await AdminCommands.failedJobs(settings: options.settings(), limit: limit) { print(line) }
            }
        }

        struct Retry: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Put a failed job (or all of them) back on its queue.")
            @OptionGroup var options: ConfigOption
            @Argument(help: "The failed job's id.") var id: String?
            @Flag(help: "Retry every failed job.") var all = false
            func validate() throws {
                if all == (id != nil) { throw ValidationError("give either a job id or --all") }
            }
            func run() async throws {
                let count = try await AdminCommands.retryFailedJobs(settings: options.settings(), id: id)
                print("requeued \(count) job(s)")
            }
        }

        struct Purge: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Delete every failed job.")
            @OptionGroup var options: ConfigOption
            func run() async throws {
                let count = try await AdminCommands.purgeFailedJobs(settings: options.settings())
                print("purged \(count) job(s)")
            }
        }
    }
}

struct Users: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage users.", subcommands: [Create.self, Passwd.self, Quota.self])

    struct Quota: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a user's own quotas (0: no limit; an option left out keeps the configured default).")
        @OptionGroup var options: ConfigOption
        @Option(help: "The user's email address.") var email: String
        @Option(help: "Messages the user may send per UTC day.") var messagesPerDay: Int?
        @Option(help: "Provider tokens the user's turns may use per UTC month.") var tokensPerMonth: Int?
        func validate() throws {
            if messagesPerDay == nil && tokensPerMonth == nil { throw ValidationError("give --messages-per-day, --tokens-per-month or both") }
            if (messagesPerDay ?? 0) < 0 || (tokensPerMonth ?? 0) < 0 { throw ValidationError("quotas are 0 (no limit) or positive") }
        }
        func run() async throws {
            try await AdminCommands.setQuota(settings: options.settings(), email: email, messagesPerDay: messagesPerDay, tokensPerMonth: tokensPerMonth)
            print("quota of <\(email)>: \(messagesPerDay.map { "\($0) messages a day" } ?? "default messages a day"), \(tokensPerMonth.map { "\($0) tokens a month" } ?? "default tokens a month")")
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user.")
        @OptionGroup var options: ConfigOption
        @Option(help: "The user's email address (unique).") var email: String
        @Option(help: "Display name (default: the part of the email before @).") var name: String?
        @Option(help: "user, operator or admin (admins edit global topics).") var role: String = "user"
        @Flag(help: "Read a password for the web pages from the first line of standard input (never from an argument).")
        var passwordStdin = false
        func validate() throws {
            guard ["user", "operator", "admin"].contains(role) else {
                throw ValidationError("--role must be user, operator or admin, not '\(role)'")
            }
        }
        func run() async throws {
            let settings = try options.settings()
            let password = passwordStdin ? try await Passwd.readPassword() : nil
            let user = try await AdminCommands.createUser(settings: settings, email: email, name: name, role: role)
            print("created user \(user.id) <\(user.email)> (\(role))")
            if let password {
                try await AdminCommands.setPassword(settings: settings, email: user.email, password: password)
                print("password set for <\(user.email)>")
            }
        }
    }

    struct Passwd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a user's password for the web pages, read from standard input (first line); ends the user's sessions.")
        @OptionGroup var options: ConfigOption
        @Option(help: "The user's email address.") var email: String
        func run() async throws {
            let password = try await Self.readPassword()
            try await AdminCommands.setPassword(settings: options.settings(), email: email, password: password)
            print("password set for <\(email)>; the user's sessions have ended")
        }

        /// The first line of standard input (read on a thread of its own), checked before anything connects.
        static func readPassword() async throws -> String {
            if isatty(STDIN_FILENO) != 0 { FileHandle.standardError.write(Data("password: ".utf8)) }
            let line = await withCheckedContinuation { continuation in
                Thread.detachNewThread { continuation.resume(returning: readLine(strippingNewline: true)) }
            }
            guard let line, !line.isEmpty else {
                throw ValidationError("no password on standard input (e.g. printf '%s\\n' \"$PASSWORD\" | switchboard users passwd --email E)")
            }
            if let problem = AdminCommands.passwordProblem(line) { throw ValidationError(problem) }
            return line
        }
    }
}

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage API keys.", subcommands: [Create.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API key for a user; prints the key once.")
        @OptionGroup var options: ConfigOption
        @Option(help: "The user's email address.") var user: String
        @Option(help: "A name for the key.") var name = "default"
        func run() async throws {
            let created = try await AdminCommands.createAPIKey(settings: options.settings(), userEmail: user, name: name)
            print(created.secret)
            FileHandle.standardError.write(Data("key id \(created.id) for \(user); store it now, it is not shown again\n".utf8))
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an API key by id.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The key's id.") var id: Int64
        func run() async throws {
            let outcome = try await AdminCommands.revokeAPIKey(settings: options.settings(), id: id)
            guard outcome.revoked else { throw ValidationError("no active key with id \(id)") }
            if let warning = outcome.warning { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
            print("revoked key \(id)")
        }
    }
}

struct Files: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage uploaded files.", subcommands: [Reindex.self])

    struct Reindex: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue every extracted file (or one user's) to be chunked and embedded again with the configured embedding model.")
        @OptionGroup var options: ConfigOption
        @Option(help: "Only this user's files (email address).") var user: String?
        func run() async throws {
            let count = try await AdminCommands.reindexFiles(settings: options.settings(), userEmail: user)
            print("queued \(count) file(s) for re-indexing")
        }
    }
}
