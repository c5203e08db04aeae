package main

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// The relay's tracing follows the standard OpenTelemetry environment variables, and
// is off unless they ask for it:
//
//   - OTEL_SDK_DISABLED=true turns it off whatever else is set.
//   - OTEL_TRACES_EXPORTER=otlp turns it on; "none" (or unset) leaves it off, except
//     that an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) alone turns it on too. Other exporters are
//     refused.
//   - The exporter is OTLP over HTTP (protobuf); OTEL_EXPORTER_OTLP_PROTOCOL (or
//     _TRACES_PROTOCOL) may only say http/protobuf. The exporter reads its other
//     OTEL_EXPORTER_OTLP_* variables itself (endpoint, headers, TLS, timeout,
//     compression); the SDK reads OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_* and
//     OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES. The service name defaults to
//     millrace-relay.
const tracingHelp = `Tracing (OpenTelemetry, off by default): OTEL_TRACES_EXPORTER=otlp or an
OTEL_EXPORTER_OTLP_ENDPOINT turns it on; spans go over OTLP/HTTP. OTEL_SDK_DISABLED=true
turns it off. The other OTEL_* variables (sampler, headers, service name) are honoured.`

// defaultServiceName is the service.name of the relay's spans unless OTEL_SERVICE_NAME
// or OTEL_RESOURCE_ATTRIBUTES says otherwise.
const defaultServiceName = "millrace-relay"

// tracingEnabled reports whether env asks for tracing, or why it is refused.
func tracingEnabled(env map[string]string) (bool, error) {
	if strings.EqualFold(strings.TrimSpace(env["OTEL_SDK_DISABLED"]), "true") {
		return false, nil
	}
	on := env["OTEL_EXPORTER_OTLP_ENDPOINT"] != "" || env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] != ""
	switch exp := strings.TrimSpace(env["OTEL_TRACES_EXPORTER"]); exp {
	case "":
	case "none":
		return false, nil
	case "otlp":
		on = true
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: the relay exports traces with otlp only (or none)", exp)
	}
	if !on {
		return false, nil
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := strings.TrimSpace(env[k]); v != "" {
			if v != "http/protobuf" {
				return false, fmt.Errorf("%s=%q: the relay's OTLP exporter speaks http/protobuf only", k, v)
			}
			break
		}
	}
	return true, nil
}

// setupTracing returns the tracer provider of the relay: the SDK with the OTLP/HTTP
// exporter when env asks for tracing, a no-op otherwise. shutdown flushes the spans
// still buffered. It does not touch the global provider.
func setupTracing(ctx context.Context, env map[string]string) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	on, err := tracingEnabled(env)
	if err != nil || !on {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, err
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(
			// service.name and service.version; OTEL_SERVICE_NAME overrides.
			attribute.String("service.name", defaultServiceName),
			attribute.String("service.version", readBuildInfo().Version),
		),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return sdk, sdk.Shutdown, nil
}
