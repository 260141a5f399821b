import APIServer
import Foundation
import TestSupport
import Testing

@Suite("OpenAPI document")
struct OpenAPITests {
    @Test func everyRegisteredRouteIsDocumentedAndEveryDocumentedRouteExists() async throws {
        try await TestEnvironment.with { env in
            let registered = Set(APIApplication.routes(dependencies: env.dependencies()).map(\.description))
            let documented = try OpenAPIDocument.routes("openapi.yaml")
            #expect(registered.count >= 14)
            #expect(registered.subtracting(documented).isEmpty, "not in docs/openapi.yaml: \(registered.subtracting(documented).sorted())")
            #expect(documented.subtracting(registered).isEmpty, "documented but not served: \(documented.subtracting(registered).sorted())")
        }
    }
}
