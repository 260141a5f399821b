/// Tracing off (the default) installs nothing: no exporter service, swift-distributed-tracing's
/// no-op tracer, no `traceparent` written into envelopes or streams, none read from them.
import Foundation
import Instrumentation
import Logging
import Observability
import ServiceContextModule
import Testing
import Tracing

@Suite struct TracingOffTests {
    static let off = TracingConfiguration(
        enabled: false, endpoint: "http://127.0.0.1:4318/v1/traces", sampleRatio: 1, serviceName: "switchboard",
        instanceID: TracingConfiguration.defaultInstanceID(roles: "api"))

    @Test func tracingOffInstallsNoTracerAndNoService() throws {
        #expect(try TracingSetup.bootstrap(Self.off, logger: Logger(label: "test")) == nil)
        #expect(!TracingSetup.isInstalled)
        #expect(InstrumentationSystem.tracer is NoOpTracer)
    }

    @Test func spansWriteNoTraceContextWhenOff() async {
        withSpan("enqueue turn", ofKind: .producer) { span in
            #expect(!span.isRecording)
            #expect(TraceContext.currentTraceparent() == nil)
        }
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        #expect(TraceContext.context(traceparent: incoming).count == 0)
        #expect(TraceContext.context(traceparent: nil).count == 0)
    }

    @Test func theInstanceIDTellsProcessesApart() {
        let id = TracingConfiguration.defaultInstanceID(roles: "api,worker")
        #expect(id.hasPrefix("api,worker@"))
        #expect(id.hasSuffix(":\(ProcessInfo.processInfo.processIdentifier)"))
    }
}
