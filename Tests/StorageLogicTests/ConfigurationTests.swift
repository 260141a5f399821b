import Foundation
import Storage
import Testing

@Suite("Database URL parsing")
struct ConfigurationTests {
    @Test func parsesAFullURL() throws {
        let c = try DatabaseConfiguration(url: "mariadb://sb:s3cret@127.0.0.1:3307/switchboard?pool=16")
        #expect(c.host == "127.0.0.1")
        #expect(c.port == 3307)
        #expect(c.user == "sb")
        #expect(c.password == "s3cret")
        #expect(c.database == "switchboard")
        #expect(c.poolSize == 16)
        #expect(c.socketPath == nil && c.endpoint == "127.0.0.1:3307")
    }

    @Test func socketFromTheURL() throws {
        let c = try DatabaseConfiguration(url: "mariadb://sb:pw@127.0.0.1:3307/switchboard?socket=/run/mysqld/mysqld.sock")
        #expect(c.socketPath == "/run/mysqld/mysqld.sock")
        #expect(c.endpoint == "/run/mysqld/mysqld.sock")
    }

    @Test func tlsFromTheURL() throws {
        let c = try DatabaseConfiguration(url: "mariadb://sb:pw@db.example.com/app?ssl_ca=/etc/ca.pem&ssl_cert=/etc/c.pem&ssl_key=/etc/c.key")
        #expect(c.tls == DatabaseTLS(caFile: "/etc/ca.pem", certificateFile: "/etc/c.pem", keyFile: "/etc/c.key"))
        #expect(try DatabaseConfiguration(url: "mariadb://sb@db/app?ssl=true").tls == DatabaseTLS())
        #expect(try DatabaseConfiguration(url: "mariadb://sb@db/app?ssl=true&ssl_verify=false").tls?.verify == false)
        #expect(try DatabaseConfiguration(url: "mariadb://sb@db/app?ssl=false").tls == nil)
        #expect(try DatabaseConfiguration(url: "mariadb://sb@db/app").tls == nil)
    }

    @Test func acceptsMySQLSchemeAndDefaults() throws {
        let c = try DatabaseConfiguration(url: "mysql://root@db.internal/app")
        #expect(c.port == 3306)
        #expect(c.password == "")
        #expect(c.poolSize == DatabaseConfiguration.defaultPoolSize)
    }

    @Test func percentDecodesCredentialsAndName() throws {
        let c = try DatabaseConfiguration(url: "mariadb://us%40er:p%3Ass%2Fw%40rd@127.0.0.1:3307/my%2Ddb")
        #expect(c.user == "us@er")
        #expect(c.password == "p:ss/w@rd")
        #expect(c.database == "my-db")
    }

    @Test(arguments: [
        ("postgres://u:p@h:1/db", DatabaseConfigurationError.unsupportedScheme("postgres")),
        ("mariadb://u:p@127.0.0.1:3307", .missingDatabase),
        ("mariadb://u:p@127.0.0.1:3307/", .missingDatabase),
        ("mariadb://127.0.0.1:3307/db", .missingUser),
        ("mariadb://u:p@127.0.0.1:0/db", .invalidPort("0")),
        ("mariadb://u:p@127.0.0.1/db?pool=0", .invalidOption("pool", "0")),
        ("mariadb://u:p@127.0.0.1/db?pool=lots", .invalidOption("pool", "lots")),
        ("mariadb://u:p@127.0.0.1/db?charset=latin1", .unknownOption("charset")),
        ("mariadb://u:p@127.0.0.1/db?socket=mysqld.sock", .invalidOption("socket", "mysqld.sock")),
        ("mariadb://u:p@127.0.0.1/db?ssl=yes", .invalidOption("ssl", "yes")),
        ("mariadb://u:p@127.0.0.1/db?ssl_ca=ca.pem", .invalidOption("ssl_ca", "ca.pem")),
        ("mariadb://u:p@127.0.0.1/db?ssl_cert=/c.pem", .invalidOption("ssl_cert", "needs ssl_key (and the other way round)")),
    ])
    func rejectsBadURLs(url: String, expected: DatabaseConfigurationError) {
        #expect(throws: expected) { try DatabaseConfiguration(url: url) }
    }

    @Test func rejectsNonURLs() {
        #expect(throws: DatabaseConfigurationError.self) { try DatabaseConfiguration(url: "switchboard") }
        #expect(throws: DatabaseConfigurationError.self) { try DatabaseConfiguration(url: "mariadb://u:p@/db") }
    }

    @Test func errorsNameTheProblem() {
        #expect(DatabaseConfigurationError.missingDatabase.description.contains("database name"))
        #expect(DatabaseConfigurationError.unknownOption("x").description.contains("`x`"))
    }
}

@Suite("Vector encoding")
struct VectorCodingTests {
    @Test func encodesLittleEndianFloat32() throws {
        let data = VectorCoding.encode([1.0, -2.5])
        #expect(Array(data) == [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0])
        #expect(try VectorCoding.decode(data, dimension: 2) == [1.0, -2.5])
    }

    @Test func rejectsAWrongLength() {
        #expect(throws: DatabaseError.self) { try VectorCoding.decode(Data([1, 2, 3]), dimension: 1) }
    }

    @Test func cosineRanksDirection() {
        #expect(VectorCoding.cosineSimilarity([1, 0], [2, 0]) == 1)
        #expect(VectorCoding.cosineSimilarity([1, 0], [0, 1]) == 0)
        #expect(VectorCoding.cosineSimilarity([1, 0], [-1, 0]) == -1)
        #expect(VectorCoding.cosineSimilarity([0, 0], [1, 0]) == 0)
    }

    @Test func cosineOnEncodedBytesMatchesTheDecodedVector() throws {
        let query: [Float] = [0.5, -1, 2, 0.25]
        let other: [Float] = [1, 1, -0.5, 3]
        let norm = query.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let fromBytes = VectorCoding.cosineSimilarity(query, queryNorm: norm, encoded: VectorCoding.encode(other))
        #expect(abs(fromBytes - VectorCoding.cosineSimilarity(query, other)) < 1e-6)
        #expect(VectorCoding.cosineSimilarity(query, queryNorm: norm, encoded: VectorCoding.encode([1, 2])) == 0)
    }
}
