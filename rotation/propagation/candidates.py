"""A cheap first look: could this ExternalSecret (or ClusterExternalSecret) read the secret?

The rotation only acts on ``annotate`` and ``report`` verdicts, and on a large cluster almost
every ExternalSecret names other secrets: judging each fully (stores resolved, a reason
written for every item) costs more than listing them (``bench/matching.py``). This test is
conservative: it answers False only for a well-formed spec none of whose items can name the
secret — every ``remoteRef.key``/``extract.key`` names another object, every ``find`` has a
tag that differs or a valid regexp that does not match. Anything else (malformed input, a
regexp it cannot judge, a ``find`` with neither) is a candidate and gets the full judgement,
so :func:`rotation.propagation.matching.match` with ``candidates_only`` returns exactly the
non-skip verdicts it returns without it.
"""

from __future__ import annotations

from collections.abc import Mapping

from rotation.propagation.goregexp import compile_go
from rotation.propagation.refs import Wanted


def could_read(obj: Mapping[str, object], kind: str, wanted: Wanted) -> bool:
    """False only when the object's spec certainly reads no version of ``wanted``."""
    spec = obj.get("spec")
    if type(spec) is not dict:
        return True
    if kind == "ClusterExternalSecret":
        spec = spec.get("externalSecretSpec")
        if type(spec) is not dict:
            return True
    name = wanted.name.lower()
    items = 0
    for field in ("data", "dataFrom"):
        entries = spec.get(field)
        if entries is None:
            continue
        if type(entries) is not list:
            return True
        for entry in entries:
            items += 1
            if type(entry) is not dict or _item_could_read(entry, name, wanted):
                return True
    return items == 0  # neither data nor dataFrom: malformed, let the full judgement say so


def _item_could_read(entry: dict[str, object], name: str, wanted: Wanted) -> bool:
    for holder in ("remoteRef", "extract"):
        ref = entry.get(holder)
        if ref is None:
            continue
        if type(ref) is not dict:
            return True
        key = ref.get("key")
        if type(key) is not str:
            return True
        parts = key.split("/")
        if (parts[0] if len(parts) == 1 else parts[1]).lower() == name:
            return True
    find = entry.get("find")
    if find is None:
        return not ({"remoteRef", "extract"} & entry.keys())  # a generator, or malformed
    return _find_could_read(find, wanted)


def _find_could_read(find: object, wanted: Wanted) -> bool:
    if type(find) is not dict:
        return True
    tags, name = find.get("tags"), find.get("name")
    if tags is not None:
        if type(tags) is not dict:
            return True
        if any(wanted.tags.get(str(k)) != v for k, v in tags.items()):
            return False
    if name is None:
        return True
    regexp = name.get("regexp") if type(name) is dict else None
    if type(regexp) is not str or not regexp:
        return True
    compiled = compile_go(regexp)
    return compiled.problem is not None or compiled.search(wanted.name)
