"""What an operator sees of a running agent: metrics, the request fields of log lines, and
trace context (docs/observability.md).

- `calls`: `CallStats`, the request server's counts per method (no exporter dependency);
- `requests`: the request context the running code works for (for log lines);
- `tracing`: the W3C trace a request runs in (`traceparent`), and which one is current;
- `spans`: the span interface, off by default (`NO_SPANS`); `otel`: spans recorded with
  OpenTelemetry, imported only when `[tracing]` names an exporter;
- `collector`: `AgentCollector` and `agent_registry`, the Prometheus view of an agent;
- `endpoint`: `MetricsEndpoint`, the HTTP endpoint Prometheus scrapes.

Import the modules themselves: the RPC server imports `calls` and `requests`, and
`collector` reads the RPC server, so this package re-exports nothing.
"""
