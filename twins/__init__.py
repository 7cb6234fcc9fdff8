"""Protocol twins: local stand-ins for the services the rotator talks to, for tests and the demo.

Each twin speaks its service's real wire protocol so the real client libraries can be used
against it unmodified. Never deployed.
"""
