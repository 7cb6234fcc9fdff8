"""Protocol twins: local stand-ins for the services the rotator talks to, for tests and the demo.

Each twin speaks its service's real wire protocol so the real client libraries can be used
against it unmodified. Never deployed. What the HTTPS twins share, apart from their protocols,
is in :mod:`twins.http` (server, faults, request log, lifecycle, CLI) and :mod:`twins.tls`.
"""
