"""What every HTTPS twin needs and no twin owns: plumbing shared by the Key Vault and Jenkins twins.

The twins differ in their wire protocol and agree on everything around it: a threaded TLS
server that can cut connections like a network failure (``server``), armed faults consumed by
matching requests and timed before or after the operation (``faults``), a thread-safe request
log for assertions (``request_log``), start/stop/``with`` with throwaway certificates
(``lifecycle``), and the standalone CLI's serve-until-signalled loop (``cli``). Keeping it in
one place means a fix to, say, how ``stop()`` cuts pooled connections reaches both twins.

Stdlib and :mod:`twins.tls` only: importing this never pulls in a service SDK, so the Jenkins
twin stays free of the Azure SDK. Not to be confused with the standard library's ``http``;
it is always imported as ``twins.http``.
"""
