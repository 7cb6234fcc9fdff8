"""ESO's Azure Key Vault provider (``azurekv``) with its default legacy SDK, reading through a
:class:`~twins.kubernetes.controllers.vaults.VaultReader`.

Follows ``providers/v1/azure/keyvault/keyvault.go`` at ESO v2.9.0 and the controller code that
post-processes what a provider returns (``..._controller_secret.go``, ``runtime/esutils``,
``runtime/decoding``):

- ``remoteRef.key``: ``name`` or ``type/name`` (``getObjType``: the part after a second ``/``
  is ignored); ``secret`` is read, ``cert``/``key`` fail (the Key Vault twin serves secrets
  only), any other type is "unknown Azure Keyvault object Type";
- ``version``: that version, else the latest; a 404 is ``NoSecretError`` ("Secret does not
  exist"), which :class:`ProviderError` carries as ``missing``;
- ``property``: a gjson path into a JSON value, retried with its dots escaped
  (``getProperty``); ``metadataPolicy: Fetch``: tags and ``attribute.*`` times instead;
- ``dataFrom[].extract``: a JSON object's members, strings decoded, other values raw JSON
  (``GetSecretMap``); ``dataFrom[].find``: every enabled secret carrying all ``tags`` whose
  name matches ``name.regexp`` (RE2, unanchored), at its latest version (``GetAllSecrets``);
- then ``conversionStrategy``, key validation, ``decodingStrategy`` and ``nullBytePolicy``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import unicodedata
from collections.abc import Callable, Mapping
from typing import TypeVar

from twins.kubernetes.controllers import gjson
from twins.kubernetes.controllers.gocompat import go_json, go_search, rfc3339
from twins.kubernetes.controllers.vaults import SecretNotFound, VaultReader, VaultReadError, VaultSecret
from twins.kubernetes.kinds import Obj

_T = TypeVar("_T")


class ProviderError(Exception):
    """Reading the provider failed; ``missing`` is ESO's ``NoSecretError`` (still so when wrapped)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing

    def wrap(self, prefix: str) -> ProviderError:
        """``fmt.Errorf(prefix + "%w", err)``."""
        wrapped = ProviderError(prefix + str(self), missing=self.missing)
        wrapped.__cause__ = self
        return wrapped


class AzureKV:
    """ESO's ``SecretsClient`` for one azurekv store: the three reads ExternalSecrets use."""

    def __init__(self, reader: VaultReader) -> None:
        self._reader = reader

    def __repr__(self) -> str:
        return f"AzureKV(reader={self._reader!r})"

    def get_all_secrets(self, find: Obj) -> dict[str, bytes]:
        """azurekv ``GetAllSecrets``: enabled, all tags equal, name regexp (RE2, unanchored)."""
        tags: Mapping[str, str] = find.get("tags") or {}
        pattern = str((find.get("name") or {}).get("regexp") or "")
        found: dict[str, bytes] = {}
        try:
            for listed in _vault_call(self._reader.list):
                if not listed.enabled:
                    continue
                if tags and any(listed.tags.get(key) != value for key, value in tags.items()):
                    continue
                if pattern and not go_search(pattern, listed.name):
                    continue
                secret = _vault_call(functools.partial(self._reader.get, listed.name, ""))
                found[listed.name] = secret.value.encode("utf-8")
        except ProviderError as exc:
            raise exc.wrap("error getting all secrets: ") from exc
        return _finish_map(found, find)

    def get_secret_map(self, ref: Obj) -> dict[str, bytes]:
        """azurekv ``GetSecretMap``: a JSON object's members (or the tags with ``Fetch``)."""
        object_type, name = _object_type(str(ref.get("key", "")))
        if object_type == "cert":
            raise ProviderError("cannot get use dataFrom to get certificate secret")
        if object_type == "key":
            raise ProviderError("cannot get use dataFrom to get key secret")
        if object_type != "secret":
            raise ProviderError(f"unknown Azure Keyvault object Type for {name}")
        value = self.get_secret(ref)
        if ref.get("metadataPolicy") == "Fetch":
            try:
                tags = _flat_tags(
                    _vault_call(lambda: self._reader.get(name, str(ref.get("version") or ""))), name
                )
            except ProviderError:
                tags = {}  # ESO ignores this error (tags, _ := a.getSecretTags(...))
            found = _map_properties(tags, str(ref.get("key", "")), str(ref.get("property") or ""))
        else:
            try:
                members = gjson.raw_object(value.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ProviderError(f"error unmarshalling json data: {exc}") from exc
            found = {
                key: member.encode("utf-8") if isinstance(member, str) else member
                for key, member in members.items()
            }
        return _finish_map(found, ref)

    def get_secret(self, ref: Obj) -> bytes:
        """azurekv ``GetSecret`` for a ``remoteRef``: value, ``property`` of it, or tags."""
        key = str(ref.get("key", ""))
        object_type, name = _object_type(key)
        if object_type in ("cert", "key"):
            raise ProviderError(f"the Key Vault twin serves secrets only, not {object_type}/{name}")
        if object_type != "secret":
            raise ProviderError(f"unknown Azure Keyvault object Type for {name}")
        secret = _vault_call(lambda: self._reader.get(name, str(ref.get("version") or "")))
        prop = str(ref.get("property") or "")
        if ref.get("metadataPolicy") == "Fetch":
            return _secret_tag(_all_metadata(secret), prop)
        return _property(secret.value, prop, key)


def _vault_call(action: Callable[[], _T]) -> _T:
    try:
        return action()
    except SecretNotFound as exc:
        raise ProviderError(str(exc), missing=True) from exc
    except VaultReadError as exc:
        raise ProviderError(str(exc)) from exc


def _object_type(key: str) -> tuple[str, str]:
    """azurekv ``getObjType``: ``name`` or ``type/name`` (anything after a second ``/`` ignored)."""
    parts = key.split("/")
    if len(parts) > 1:
        return parts[0], parts[1]
    return "secret", key


def _property(value: str, prop: str, key: str) -> bytes:
    """azurekv ``getProperty``: a gjson path, retried with dots escaped."""
    if not prop:
        return value.encode("utf-8")
    found = gjson.get(value, prop)
    if found is None:
        if "." not in prop:
            raise ProviderError(f"property {prop} does not exist in key {key}")
        found = gjson.get(value, prop.replace(".", "\\."))
        if found is None:
            raise ProviderError(f"property {prop} does not exist in key {key}")
    return found.encode("utf-8")


def _all_metadata(secret: VaultSecret) -> dict[str, str]:
    """``getSecretAllMetadata`` (legacy SDK): tags plus ``attribute.*`` times."""
    return {**secret.tags, **_attributes(secret)}


def _attributes(secret: VaultSecret) -> dict[str, str]:
    """The legacy SDK's ``attribute.*`` times that are set, as RFC 3339."""
    times = {
        "attribute.expires": secret.expires,
        "attribute.created": secret.created,
        "attribute.updated": secret.updated,
        "attribute.notBefore": secret.not_before,
    }
    return {key: rfc3339(when.timestamp()) for key, when in times.items() if when is not None}


def _secret_tag(tags: Mapping[str, str], prop: str) -> bytes:
    """``getSecretTag``: every tag as JSON, one tag, or a gjson path into one."""
    if not prop:
        return go_json(dict(tags)).encode("utf-8")
    if prop in tags:
        return tags[prop].encode("utf-8")
    index = prop.find(".")
    if index > 0 and prop[:index] in tags:
        tag = prop[:index]
        return _property(tags[tag], prop.replace(tag + ".", "", 1), prop)
    raise ProviderError(f"tag {prop} does not exist")


def _flat_tags(secret: VaultSecret, name: str) -> dict[str, str]:
    """``getSecretTagsWithLegacySDK``: ``<name>_<tag>``, JSON tags flattened, attributes."""
    flat: dict[str, str] = {}
    for tag, value in secret.tags.items():
        prefix = f"{name}_{tag}"
        members = _string_map(value)
        if members is None:
            flat[prefix] = value
        else:
            flat.update({f"{prefix}_{key}": member for key, member in members.items()})
    flat.update({f"{name}_{key}": value for key, value in _attributes(secret).items()})
    return flat


def _string_map(text: str) -> dict[str, str] | None:
    """``json.Unmarshal`` into ``map[string]string``, or None if it fails."""
    try:
        members = gjson.raw_object(text)
    except ValueError:
        return None
    if any(not isinstance(member, str) for member in members.values()):
        return None
    return {key: str(member) for key, member in members.items()}


def _map_properties(tags: Mapping[str, str], key: str, prop: str) -> dict[str, bytes]:
    """``getSecretMapProperties``."""
    if prop:
        name = f"{key}_{prop}"
        try:
            return {name: _secret_tag(tags, name)}
        except ProviderError:
            return {name: b""}
    return {tag: value.encode("utf-8") for tag, value in tags.items()}


def _finish_map(found: dict[str, bytes], ref: Obj) -> dict[str, bytes]:
    """Convert keys, validate them, decode values, check null bytes (extract and find)."""
    strategy = str(ref.get("conversionStrategy") or "Default")
    converted: dict[str, bytes] = {}
    for key, value in found.items():
        new_key = _convert_key(strategy, key)
        if new_key in converted:
            raise ProviderError(
                f"error applying conversion strategy {strategy} to keys: "
                f"secret name collision during conversion: {new_key}"
            )
        converted[new_key] = value
    converted = {key: value for key, value in converted.items() if key}
    for key in converted:
        problem = _key_problem(key)
        if problem:
            raise ProviderError(
                f"invalid secret keys (TIP: use rewrite or conversionStrategy to change keys): {problem}"
            )
    decoding = str(ref.get("decodingStrategy") or "")
    decoded: dict[str, bytes] = {}
    for key, value in converted.items():
        try:
            decoded[key] = decode(decoding, value)
        except ValueError as exc:
            raise ProviderError(
                f"error applying decoding strategy {decoding} to data: failure decoding key {key}: {exc}"
            ) from exc
    if ref.get("nullBytePolicy") == "Fail":
        for key in sorted(decoded):
            if b"\x00" in decoded[key]:
                raise ProviderError(null_byte_message(key))
    return decoded


def null_byte_message(key: str) -> str:
    return (
        f'fetched secret value for key "{key}" contains null bytes; use a text-safe format such as '
        "PEM/base64 or leave nullBytePolicy unset for intentional binary data"
    )


def _allowed_key_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "LN" or char in "-._"


def _convert_key(strategy: str, key: str) -> str:
    """``esutils.convert``: Default turns each other character into ``_``, Unicode into ``_Uxxxx_``."""
    if strategy == "Unicode":
        return "".join(c if _allowed_key_char(c) else f"_U{ord(c):04x}_" for c in key)
    if strategy == "Default":
        return "".join(c if _allowed_key_char(c) else "_" for c in key)
    return key


def _key_problem(key: str) -> str | None:
    """``esutils.ValidateKeys``."""
    if len(key.encode("utf-8")) > 253:
        return (
            f"key has length {len(key.encode('utf-8'))} but max is 253: (following is truncated): {key[:253]}"
        )
    for char in key:
        if not _allowed_key_char(char):
            return f"key has invalid character {char}, only alphanumeric, '-', '.' and '_' are allowed: {key}"
    return None


def decode(strategy: str, value: bytes) -> bytes:
    """``decoding.Decode``: None (default), Base64, Base64URL, Auto."""
    if strategy in ("", "None"):
        return value
    if strategy == "Base64":
        return _b64(value, urlsafe=False)
    if strategy == "Base64URL":
        return _b64(value, urlsafe=True)
    if strategy == "Auto":
        for urlsafe in (False, True):
            try:
                return _b64(value, urlsafe=urlsafe)
            except ValueError:
                continue
        return value
    raise ValueError(f"decoding strategy {strategy} is not supported")


def _b64(value: bytes, *, urlsafe: bool) -> bytes:
    try:
        if urlsafe:
            return base64.b64decode(value.translate(bytes.maketrans(b"-_", b"+/")), validate=True)
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"illegal base64 data: {exc}") from exc
