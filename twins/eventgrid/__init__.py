"""An Event Grid topic twin: what akv-rotator publishes its rotation events to, in tests and
the demo. See :mod:`twins.eventgrid.twin`."""

from twins.eventgrid.twin import EventGridTwin, Published

__all__ = ["EventGridTwin", "Published"]
