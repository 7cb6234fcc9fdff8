"""Hypothesis strategies for hostile Event Grid events, HTTP requests and tag sets, and the
snapshot that proves a refused input changed nothing (Key Vault, journal, PostgreSQL).

Everything generated is what a sender can put on the wire: JSON objects whose fields may be
missing, of the wrong type, huge, deeply nested, or text with lone surrogates (a Python
``"\\ud800"`` is JSON-dumped as an escaped surrogate, exactly as a hostile sender can write
it). Big values are built by repetition, not drawn character by character, so a run of
thousands of examples stays fast.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
from azure.keyvault.secrets import SecretClient
from hypothesis import strategies as st

from tests.support.postgres import PostgresServer

MISSING: Any = object()  # a field left out of the payload altogether

EVENT_KINDS = ("SecretNearExpiry", "SecretExpired", "SecretNewVersionCreated")
NEW_VERSION_ONLY = ("SecretNewVersionCreated",)
MAX_DEPTH = 400  # nesting json.dumps/json.loads take in this worker's stack, with room to spare

# -- text ------------------------------------------------------------------------------

# One draw per character (a one_of of character strategies costs two, and text is most of
# what is drawn): ASCII, every 251st code point of all 17 planes (lone surrogates, unassigned
# and private-use ones included), and characters that have broken parsers before.
TRICKY_CHARS = [
    "\x00", "\n", "\r", "\t", " ", "\u00a0", "\u2028", "\ufeff", "\u0130", "ß", "²", "٣",
    "\uff11", "\u0301", "\u202e", "\ud800", "\udbff", "\udc00", "\udfff", "\U0010ffff", "\U000e0001",
]
ALPHABET = [chr(c) for c in (*range(128), *range(128, 0x110000, 251))] + TRICKY_CHARS
ALPHABET += [chr(c) for c in range(32, 127)] * 16  # and printable ASCII a quarter of the time
CHARS = st.sampled_from(ALPHABET)
# The worst case for anything that quotes text: 10 characters of repr() (or 6 of a JSON
# \u escape, 12 for a surrogate pair) for each one.
LONGEST_ESCAPES = st.sampled_from(["\U000e0001", "\U0010ffff", "\ud800", "\x00"])
TRICKY_TEXT = st.sampled_from([
    "", " ", "\n", "null", "None", "0", "-1", "1e999", "nan", "NaN", "inf", "true", "[]", "{}",
    "../../etc/passwd", "..%2f..%2f", "a/b", "db-x\n", "db-x\x00", " db-x ", "DB-X",
    "\ud800", "\udfff\ud800", "kv-test\n", "x" * 128, "0" * 32, "0" * 32 + "\n",
    "f" * 31 + "\u0660", "%s%s%s", "${jndi:ldap://x}", "<script>",
])


@functools.cache  # strategies are built once: building one per draw is slow
def text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Short hostile text: any code point (surrogates included) and the classic traps."""
    return st.one_of(st.text(CHARS, max_size=max_size), TRICKY_TEXT)


@functools.cache  # strategies are built once: building one per draw is slow
def huge_text(min_size: int = 1025, max_size: int = 100_000) -> st.SearchStrategy[str]:
    """Text of up to ``max_size`` characters, made by repeating a short drawn piece."""
    return st.builds(
        lambda piece, n: (piece * (n // len(piece) + 1))[:n],
        st.one_of(st.text(CHARS, min_size=1, max_size=6), LONGEST_ESCAPES),
        st.integers(min_size, max_size),
    )


@functools.cache  # strategies are built once: building one per draw is slow
def any_text(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.one_of(text(max_size), huge_text())


# -- JSON values -----------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), text(20),
)


def nested(depth: int, leaf: Any, pattern: list[bool]) -> Any:
    """``leaf`` wrapped ``depth`` times in lists and objects (in the order ``pattern`` says)."""
    value = leaf
    for level in range(depth):
        value = [value] if pattern[level % len(pattern)] else {"k": value}
    return value


DEEP = st.builds(nested, st.integers(50, MAX_DEPTH), SCALARS,
                 st.lists(st.booleans(), min_size=1, max_size=4))
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(text(12), children, max_size=4)),
    max_leaves=6,
)
WRONG_TYPES = st.one_of(st.integers(), st.floats(), st.booleans(),
                        st.lists(SCALARS, max_size=3), st.dictionaries(text(8), SCALARS, max_size=3),
                        DEEP)


def drop_missing(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not MISSING}


# -- events ----------------------------------------------------------------------------
#
# An event starts as a well-formed one for a target, in one of the key casings Microsoft's
# samples have used, and then has up to three of its fields garbled: left out, null, of the
# wrong type, junk, huge or deeply nested. (Garbling every field at once would stop nearly
# every event at its first check; a few at a time reaches every check behind it.)


@dataclass(frozen=True)
class EventTarget:
    """What a plausible event names. ``kinds`` are the event types that are safe to send
    for it: an event that may legitimately rotate something is never generated."""

    vault: str
    secret: str
    version: str
    kinds: tuple[str, ...] = EVENT_KINDS


def topic_of(vault: str) -> str:
    return ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg"
            f"/providers/Microsoft.KeyVault/vaults/{vault}")


def type_variants(kinds: tuple[str, ...]) -> list[str]:
    """Handled types in any case and padding (still the same type once parsed)."""
    return [pad + name + pad for kind in kinds for pad in ("", " ", "\t")
            for name in (f"Microsoft.KeyVault.{kind}", f"microsoft.keyvault.{kind.lower()}",
                         f"MICROSOFT.KEYVAULT.{kind.upper()}")]


OTHER_TYPES = ["Microsoft.KeyVault.KeyNearExpiry", "Microsoft.KeyVault.SecretNearExpiryX",
               "Microsoft.Storage.BlobCreated", "Microsoft.KeyVault.", "SecretNearExpiry",
               "Microsoft.KeyVault.SecretNearExpiry\x00", "Microsoft.KeyVault.Secret\u0130"]

EVENT_TIMES = st.sampled_from([  # what the worker's converter reads (falsy values as None)
    MISSING, "2019-07-25T01:08:33.1036736Z", "2024-02-29T23:59:59Z", "2024-02-29T23:59:59",
    "2024-02-29T23:59:59.123456+00:00", "2024-02-29T23:59:59.1234567+00:00",
    "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
])
HOSTILE_TIMES = st.sampled_from([  # half of these make the converter itself raise (discarded)
    None, "", 0, False, [], {}, "yesterday", 1559081980, "2024-13-01T00:00:00Z", ["2024"],
    "2024-02-29T23:59:59.1234567-05:00",  # the converter reads no offset but +00:00
])
TIMESTAMPS = st.one_of(  # Unix seconds as Microsoft has sent them: numbers, numeric text, null
    st.integers(0, 2**32), st.sampled_from([1559081980.5, "1559081980", " 1559081980 ", None]))
HOSTILE_VALUE = st.one_of(
    st.just(MISSING), st.none(), WRONG_TYPES, text(40), huge_text(),
)
HOSTILE_TIMESTAMPS = st.one_of(
    HOSTILE_VALUE, st.integers(-2**70, 2**70), st.floats(),
    st.sampled_from(["1e999", "nan", "-inf", "0x10", "1_000", "١٢٣", "", "soon", "1e308"]),
)
KEY_STYLES = st.sampled_from(["as-sent", "as-sent", "lower", "upper", "camel", "mask",
                              "spaced", "tabbed", "nbsp", "newline"])
PADS = {"spaced": " ", "tabbed": "\t", "nbsp": "\u00a0", "newline": "\n"}


def restyle(key: str, style: str, mask: int) -> str:
    """``key`` as one of Microsoft's samples might have spelled it."""
    if style == "lower":
        return key.lower()
    if style == "upper":
        return key.upper()
    if style == "camel":
        return key[:1].lower() + key[1:]
    if style == "mask":
        return "".join(c.upper() if mask >> i & 1 else c.lower() for i, c in enumerate(key))
    if style in PADS:
        return f"{PADS[style]}{key}{PADS[style] if mask & 1 else ''}"
    return key


DATA_KEYS = ("Id", "VaultName", "ObjectType", "ObjectName", "Version", "NBF", "EXP")
ENVELOPE_KEYS = ("id", "topic", "subject", "eventType", "eventTime", "dataVersion",
                 "metadataVersion")
GARBLES = st.sets(st.sampled_from([
    *ENVELOPE_KEYS, *(f"data.{k}" for k in DATA_KEYS), "data", "data.duplicate", "data.extra",
    "extra",
]), max_size=3)
DATA_SHAPES = st.sampled_from(["json-text", "null", "missing", "wrong", "deep", "huge"])
EXTRA_FIELDS = st.dictionaries(text(12), JSON_VALUES, min_size=1, max_size=2)
EXTENSIONS = st.dictionaries(  # CloudEvents extension attributes: lower-case alphanumerics
    st.from_regex(r"[a-z][a-z0-9]{0,19}", fullmatch=True).filter(
        lambda k: k not in ("self", "id", "source", "type", "specversion", "time", "subject",
                            "datacontenttype", "dataschema", "data")),
    JSON_VALUES, min_size=1, max_size=2)
SPEC_VERSIONS = st.one_of(st.just("1.0"), st.just("1.0"), st.just("1.0"), JSON_VALUES)


@functools.cache
def good_fields(target: EventTarget) -> dict[str, st.SearchStrategy[Any]]:
    """Each field of a well-formed event for ``target`` (data fields as ``data.<Key>``)."""
    version = target.version
    handled = type_variants(target.kinds)
    return {
        "id": st.uuids().map(str),
        "topic": st.sampled_from([topic_of(target.vault), topic_of(target.vault).upper()]),
        "subject": st.sampled_from([target.secret, f" {target.secret} "]),
        "eventType": st.sampled_from(handled * 3 + OTHER_TYPES),
        "eventTime": EVENT_TIMES,
        "dataVersion": st.just("1"),
        "metadataVersion": st.just("1"),
        "data.Id": st.sampled_from([
            f"https://{target.vault}.vault.azure.net/secrets/{target.secret}/{version}",
            f"https://{target.vault}.vault.azure.net/secrets/{target.secret}/{version}/",
            f"https://{target.vault}.vault.azure.net/secrets/{target.secret}",
        ]),
        "data.VaultName": st.sampled_from([target.vault, target.vault.upper(),
                                           f" {target.vault} "]),
        "data.ObjectType": st.sampled_from(["Secret", "secret", " SECRET ", "Key"]),
        "data.ObjectName": st.sampled_from([target.secret, f" {target.secret} ",
                                            f"{target.secret}\n"]),
        "data.Version": st.sampled_from([version, version.upper(), f" {version} "]),
        "data.NBF": TIMESTAMPS,
        "data.EXP": TIMESTAMPS,
    }


@functools.cache
def near_misses(target: EventTarget) -> dict[str, st.SearchStrategy[Any]]:
    """Fields for ``target`` that are one character away from right: a garbled field is
    one of these half of the time. None of them names another secret or version."""
    vault, secret, version = target.vault, target.secret, target.version
    return {
        "topic": st.sampled_from([topic_of(vault) + "/", topic_of(vault + "\n"),
                                  topic_of(vault).replace("/vaults/", "/vaults//")]),
        "subject": st.sampled_from([secret + "\x00", f"{secret}/{version}", "\u0130" + secret]),
        "data.Id": st.sampled_from([
            f"https://{vault}\n.vault.azure.net/secrets/{secret}",
            f"https://{vault}.vault.azure.net/secrets/{secret}/{version}\n/x",
            f"https://{vault}.vault.azure.net/secrets/{secret}/{version}?api-version=7.4",
            f"http://{vault}.vault.azure.net/secrets/{secret}/{version}",
        ]),
        "data.VaultName": st.sampled_from([f"{vault}.vault.azure.net", vault + "\x00",
                                           f"{vault}\n-x", "-" + vault]),
        "data.ObjectName": st.sampled_from([secret + "\x00", f"{secret}/x", secret + "\u0660"]),
        "data.Version": st.sampled_from([version + "\x00", version[:-1] + "\u0660",
                                         version + "/", version * 3]),
    }


@st.composite
def events(draw: st.DrawFn, targets: list[EventTarget], *, max_garbled: int = 3,
           cloud: bool | None = None) -> dict[str, Any]:
    """A payload about one of ``targets``, in the Event Grid schema or as a CloudEvent
    (``cloud``: None for either), with up to ``max_garbled`` fields garbled."""
    target = draw(st.sampled_from(targets))
    garbled = draw(GARBLES) if max_garbled else set()
    good = good_fields(target)

    def field(name: str) -> Any:
        if name not in garbled:
            return draw(good[name])
        if name == "eventTime":
            return draw(HOSTILE_TIMES)
        if name in ("data.NBF", "data.EXP"):
            return draw(HOSTILE_TIMESTAMPS)
        near = near_misses(target).get(name)
        return draw(HOSTILE_VALUE if near is None or draw(st.booleans()) else near)

    style, mask = draw(KEY_STYLES), draw(st.integers(0, 2**12 - 1))
    data: Any = {}
    for key in DATA_KEYS:
        value = field(f"data.{key}")
        if value is not MISSING:
            data[restyle(key, style, mask)] = value
    if "data.duplicate" in garbled:  # the same key again, spelt another way
        key = draw(st.sampled_from(DATA_KEYS))
        data[restyle(key, draw(KEY_STYLES), mask + 1)] = draw(HOSTILE_VALUE.filter(
            lambda value: value is not MISSING))
    if "data.extra" in garbled:
        data = {**draw(EXTRA_FIELDS), **data}
    if "data" in garbled:
        shape = draw(DATA_SHAPES)
        if shape == "json-text":
            data = json.dumps(data)  # a string holding JSON: the parser decodes it
        elif shape == "null":
            data = None
        elif shape == "missing":
            data = MISSING
        elif shape == "wrong":
            data = draw(st.one_of(WRONG_TYPES, JSON_VALUES))
        elif shape == "deep":
            deep = draw(DEEP)
            data = draw(st.sampled_from([deep, json.dumps(deep), {**data, "Version": deep}]))
        else:
            data = draw(st.sampled_from([draw(huge_text()), {**data, "ObjectName": draw(huge_text())}]))
    extra = draw(EXTRA_FIELDS) if "extra" in garbled else {}
    if cloud if cloud is not None else draw(st.booleans()):
        return drop_missing({
            **(draw(EXTENSIONS) if extra else {}),  # first, and never a name used below
            "specversion": draw(SPEC_VERSIONS) if garbled else "1.0",
            "id": field("id"), "source": field("topic"), "type": field("eventType"),
            "time": field("eventTime"), "subject": field("subject"),
            "datacontenttype": "application/json", "data": data,
        })
    return drop_missing({
        **extra,  # first: they never replace a field below
        "id": field("id"), "topic": field("topic"), "subject": field("subject"),
        "eventType": field("eventType"), "eventTime": field("eventTime"), "data": data,
        "dataVersion": field("dataVersion"), "metadataVersion": field("metadataVersion"),
    })


class ConverterRefused(Exception):
    """The Functions worker's own converter raised: the host would never call us."""


def decode(payload: dict[str, Any]) -> func.EventGridEvent | func.CloudEvent:
    """Decode a payload exactly as the Python worker does: JSON text in a ``json`` Datum,
    and the worker's converter picks the schema (``specversion`` means CloudEvents)."""
    try:
        wire = json.dumps(payload)
    except (ValueError, RecursionError) as exc:  # not expressible as JSON: never on the wire
        raise ConverterRefused(type(exc).__name__) from exc
    try:
        event: func.EventGridEvent | func.CloudEvent = EventGridEventInConverter.decode(
            meta.Datum(wire, "json"), trigger_metadata={})
    except Exception as exc:  # the worker's code, not ours
        raise ConverterRefused(type(exc).__name__) from exc
    return event


# -- HTTP ------------------------------------------------------------------------------
#
# Like events, a request starts well-formed (a plain body or none, the one vault, a plausible
# principal) and has up to two of its parts garbled, so that many reach the vault and the
# operator's allowlists and are refused there, not only at the first check.

HEADER_NAMES = st.one_of(
    st.sampled_from(["x-ms-client-principal-name", "x-ms-client-principal-id",
                     "X-MS-CLIENT-PRINCIPAL-NAME", "content-type", "content-length",
                     "retry-after", "x-forwarded-for", "authorization"]),
    st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,30}", fullmatch=True),
)
HEADERS = st.dictionaries(HEADER_NAMES, st.one_of(text(60), huge_text(257, 5000),
                                                  st.sampled_from(["admin", "a" * 256, "a" * 257])),
                          max_size=4)
GOOD_HEADERS = st.sampled_from([
    {}, {"x-ms-client-principal-name": "alice@example.com"},
    {"x-ms-client-principal-id": "6f1c1d7e-2b7a-4a51-9a51-1d2f3c4b5a69"},
    {"X-MS-CLIENT-PRINCIPAL-NAME": "ops-bot", "x-ms-client-principal-id": "42"},
])
QUERY = st.dictionaries(
    st.one_of(st.sampled_from(["vault", "limit", "Vault", "LIMIT"]), text(10)),
    st.one_of(text(70), huge_text(65, 5000), st.sampled_from(
        ["kv-test", "KV-TEST", " kv-test ", "kv-other", "20", "200", "201", "0", "²", "1e3"])),
    max_size=3,
)
GOOD_QUERY = st.sampled_from([{}, {"vault": "kv-test"}, {"vault": "KV-Test"}, {"limit": "5"},
                              {"vault": "kv-test", "limit": "200"}])


def dumped(value: Any) -> bytes:
    return json.dumps(value).encode()


GOOD_BODIES = st.sampled_from([
    b"", b"  ", b"{}", b'{"reason": null}', dumped({"reason": "rotating after incident 42"}),
    dumped({"reason": ""}), dumped({"reason": "x" * 200}), dumped({"reason": "caf\u00e9 \u2603"}),
])
BODIES = st.one_of(  # empty, random bytes, JSON of anything, deep, oversized, hostile reasons
    st.binary(max_size=64), st.binary(min_size=1000, max_size=1100),
    JSON_VALUES.map(dumped), DEEP.map(dumped),
    st.builds(lambda reason: dumped({"reason": reason}), st.one_of(text(250), huge_text(201, 400))),
    st.builds(lambda reason, extra: dumped({"reason": reason, **extra}), text(20),
              st.dictionaries(text(10), SCALARS, min_size=1, max_size=2)),
    huge_text(1025, 200_000).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"[" * 100_000, b"{" * 600, b'{"reason": "\\ud800"}',
                     b"\xff\xfe{\x00}\x00", b"\xef\xbb\xbf{}", b"{}" + b" " * 1023]),
)
NAME_CHARS = st.sampled_from("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")
HOSTILE_NAMES = st.one_of(  # names Key Vault would take (none of them exists), and others
    st.text(NAME_CHARS, min_size=1, max_size=24), any_text(), st.just(""),
    st.builds(lambda piece, n: (piece * n)[:n], st.text(NAME_CHARS, min_size=1, max_size=4),
              st.sampled_from([126, 127, 128, 300])),
)
REQUEST_GARBLES = st.sets(st.sampled_from(["name", "body", "params", "headers"]), max_size=2)


@st.composite
def requests(draw: st.DrawFn, names: list[str]) -> tuple[str, bytes, dict[str, str],
                                                          dict[str, str]]:
    """(route name, body, query, headers): a request about one of ``names``, or garbled."""
    garbled = draw(REQUEST_GARBLES)
    return (draw(HOSTILE_NAMES if "name" in garbled else st.sampled_from(names)),
            draw(BODIES if "body" in garbled else GOOD_BODIES),
            draw(QUERY if "params" in garbled else GOOD_QUERY),
            draw(HEADERS if "headers" in garbled else GOOD_HEADERS))


# -- tags ------------------------------------------------------------------------------

ROTATOR_TAGS = ["rotator-target", "rotator-username", "rotator-validity-days",
                "rotator-strategy", "rotator-grace-hours", "rotator-address",
                "rotator-admin-secret", "rotator-rotation-id", "rotator-written-by",
                "rotator-rotated-at"]
TAG_VALUES = {
    "rotator-target": ["test-pg", "TEST-PG", " test-pg ", "unknown", "Not A Target!", "a" * 63],
    "rotator-validity-days": ["30", "0", "3651", "-5", "soon", "1_000", "١٢", "1e3", " 7 "],
    "rotator-grace-hours": ["24", "0", "720.5", "nan", "inf", "-0", "1e-400", "soon"],
    "rotator-strategy": ["single-user", "alternating-users", "SINGLE-USER", "other"],
    "rotator-username": ["app", "a" * 129, "x\x00", "\ud800", " "],
}


@functools.cache
def tag_value(key: str) -> st.SearchStrategy[str]:
    plausible = TAG_VALUES.get(key, ["x"])
    return st.one_of(st.sampled_from(plausible), text(60), huge_text(200, 256))


TARGET_TAG = st.sampled_from(["test-pg", " Test-PG "])
KNOBS = st.lists(st.sampled_from([k for k in TAG_VALUES if k != "rotator-target"]), max_size=2,
                 unique=True)
ANY_ROTATOR_TAGS = st.lists(st.sampled_from(ROTATOR_TAGS), max_size=5, unique=True)
OTHER_TAGS = st.dictionaries(st.one_of(text(30), huge_text(200, 256)),
                             st.one_of(text(60), huge_text(200, 256)), max_size=2)


@st.composite
def tag_sets(draw: st.DrawFn) -> dict[str, str]:
    """Up to 15 tags of up to 256 characters: the rotator's own names with any value,
    and any other names. Half of the sets select the operator's target and garble only
    the knobs a tag may tune, so the checks after the target's (the catalogue's) run too."""
    tags: dict[str, str] = {}
    if draw(st.booleans()):
        tags["rotator-target"] = draw(TARGET_TAG)
        keys = draw(KNOBS)
    else:
        keys = draw(ANY_ROTATOR_TAGS)
    for key in keys:
        tags[key] = draw(tag_value(key))
    for key, value in draw(OTHER_TAGS).items():
        tags.setdefault(key, value)
    return tags


# -- proving nothing changed -------------------------------------------------------------


def vault_state(kv: SecretClient) -> dict[str, list[tuple[Any, ...]]]:
    """Every secret, every version: id, enabled, tags, content type, expiry and value."""
    state: dict[str, list[tuple[Any, ...]]] = {}
    for item in kv.list_properties_of_secrets():
        name = item.name or ""
        versions = []
        for props in kv.list_properties_of_secret_versions(name):
            value = kv.get_secret(name, props.version).value if props.enabled else None
            versions.append((props.version, props.enabled, sorted((props.tags or {}).items()),
                             props.content_type, props.expires_on, value))
        state[name] = sorted(versions, key=lambda v: str(v[0]))
    return state


def journal_rows(spec: str) -> list[tuple[Any, ...]]:
    """Every row of the SQLite journal named by ``ROTATOR_JOURNAL`` ("sqlite:<path>")."""
    path = Path(spec.removeprefix("sqlite:"))
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        try:
            return list(conn.execute("SELECT partition, row, data, etag FROM journal "
                                     "ORDER BY partition, row"))
        except sqlite3.OperationalError:  # no table yet: nothing was ever written
            return []


@dataclass
class Logins:
    """PostgreSQL logins and the passwords they must still log in with."""

    postgres: PostgresServer
    passwords: dict[str, str] = field(default_factory=dict)

    def state(self) -> dict[str, bool]:
        return {role: self.postgres.can_login(role, pw) for role, pw in self.passwords.items()}
