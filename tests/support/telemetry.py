"""One in-memory OpenTelemetry provider for the whole test session.

The global tracer provider can be set only once per process, so the session installs an SDK
provider with an in-memory exporter, and each test clears the exporter.
"""

from __future__ import annotations

from functools import cache

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@cache
def span_exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


@cache
def metric_reader() -> InMemoryMetricReader:
    """The session's metric reader; the global meter provider, too, can be set only once."""
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


def metric_points(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The current value of each point of a counter or gauge, keyed by its sorted attributes."""
    return {key: float(point.value)  # type: ignore[attr-defined]
            for key, point in metric_series(name).items()}


def metric_series(name: str) -> dict[tuple[tuple[str, str], ...], object]:
    """Every data point of a metric (counter, gauge or histogram), keyed by sorted attributes."""
    data = metric_reader().get_metrics_data()
    points: dict[tuple[tuple[str, str], ...], object] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:  # type: ignore[union-attr]
                        key = tuple(sorted((k, str(v)) for k, v in (point.attributes or {}).items()))
                        points[key] = point
    return points


def metric_units() -> dict[str, str]:
    """Each metric the process has reported, with its unit."""
    data = metric_reader().get_metrics_data()
    return {metric.name: metric.unit or "" for resource in (data.resource_metrics if data else ())
            for scope in resource.scope_metrics for metric in scope.metrics}
