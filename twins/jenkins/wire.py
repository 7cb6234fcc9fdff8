"""JSON bodies and date formats exactly as Jenkins writes them.

- ``okJSON``/``errorJSON`` (``core/src/main/java/hudson/util/HttpResponses.java``
  ``JSONObjectResponse``): ``{"status":"ok","data":{...}}`` or ``{"status":"error",
  "message":...}``, always HTTP 200, ``Content-Type: application/json; charset=UTF-8``.
- ``…/api/json`` (Stapler's exported beans): ``_class`` first, then the exported properties in
  name order, ``Content-Type: application/json;charset=UTF-8``; compact separators, as
  json-lib writes them.
- The default token name uses ``DateTimeFormatter.ISO_OFFSET_DATE_TIME`` (fraction without
  trailing zeros, ``Z`` for UTC); ``expirationDate`` uses the *request locale's* SHORT date
  format (``Functions.getCurrentLocale()``), which clients must not parse; the twin knows a
  few CLDR patterns so a client that does parse it breaks here as it would on a real server.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from twins.jenkins.store import JenkinsUser, NewToken

OK_JSON_TYPE = "application/json; charset=UTF-8"
API_JSON_TYPE = "application/json;charset=UTF-8"
HTML_TYPE = "text/html;charset=utf-8"

# CLDR SHORT date patterns (what Java 9+ uses) for a few locales; default is the JVM's en-US.
_SHORT_DATE = {
    "en-us": "{m}/{d}/{yy}",
    "en-gb": "{dd}/{mm}/{yyyy}",
    "de": "{dd}.{mm}.{yy}",
    "fr": "{dd}/{mm}/{yyyy}",
    "ja": "{yyyy}/{mm}/{dd}",
}
_DEFAULT_LOCALE = "en-us"


def dumps(body: Any) -> bytes:
    """Compact UTF-8 JSON, as json-lib and Stapler emit it."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def ok_json(data: dict[str, Any] | None = None) -> dict[str, Any]:
    """``HttpResponses.okJSON``: ``data`` only when given (``rename`` sends none)."""
    return {"status": "ok"} if data is None else {"status": "ok", "data": data}


def error_json(message: str) -> dict[str, Any]:
    """``HttpResponses.errorJSON``: a failure reported with HTTP 200."""
    return {"status": "error", "message": message}


def new_token_data(token: NewToken, accept_language: str | None) -> dict[str, Any]:
    """The ``data`` of a successful ``generateNewToken`` (Jenkins >= 2.548)."""
    expires = token.info.expires
    return {
        "tokenUuid": token.info.uuid,
        "tokenName": token.info.name,
        "tokenValue": token.value,
        "expirationDate": "never" if expires is None else short_date(expires, accept_language),
        "aboutToExpire": token.about_to_expire,
    }


def who_am_i(user: JenkinsUser | None) -> dict[str, Any]:
    """``hudson.security.WhoAmI`` for a user, or for anonymous (``Jenkins.ANONYMOUS2``).

    Spring's ``AnonymousAuthenticationToken`` reports itself authenticated, so anonymous is
    ``"authenticated": true`` with the ``anonymous`` authority; only ``anonymous`` tells.
    """
    if user is None:
        return {
            "_class": "hudson.security.WhoAmI",
            "anonymous": True,
            "authenticated": True,
            "authorities": ["anonymous"],
            "name": "anonymous",
        }
    return {
        "_class": "hudson.security.WhoAmI",
        "anonymous": False,
        "authenticated": True,
        "authorities": ["authenticated"],
        "name": user.id,
    }


def me(user: JenkinsUser, root_url: str) -> dict[str, Any]:
    """``hudson.model.User`` as ``/me/api/json`` shows it to the user itself.

    ``property`` lists the user's properties because a user always has Administer on itself;
    the ``ApiTokenProperty`` exports nothing but its class, so no token data leaks here.
    """
    return {
        "_class": "hudson.model.User",
        "absoluteUrl": f"{root_url}user/{user.id.lower()}",
        "description": user.description,
        "fullName": user.full_name,
        "id": user.id,
        "property": [{"_class": "jenkins.security.ApiTokenProperty"}],
    }


def crumb(value: str, field: str) -> dict[str, Any]:
    """``hudson.security.csrf.DefaultCrumbIssuer`` as ``/crumbIssuer/api/json`` shows it."""
    return {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": value, "crumbRequestField": field}


def iso_offset_date_time(moment: datetime) -> str:
    """Java's ``ISO_OFFSET_DATE_TIME``: ``2026-08-21T18:01:25.5-06:00``, ``Z`` for UTC."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    offset = moment.utcoffset()
    if not offset:
        return text + "Z"
    sign = "-" if offset.total_seconds() < 0 else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def short_date(day: date, accept_language: str | None) -> str:
    """``FormatStyle.SHORT`` in the first known locale of ``Accept-Language``, else en-US."""
    pattern = _SHORT_DATE[_locale(accept_language)]
    return pattern.format(
        d=day.day,
        dd=f"{day.day:02d}",
        m=day.month,
        mm=f"{day.month:02d}",
        yy=f"{day.year % 100:02d}",
        yyyy=f"{day.year:04d}",
    )


def _locale(accept_language: str | None) -> str:
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower().replace("_", "-")
        if tag in _SHORT_DATE:
            return tag
        language = tag.split("-")[0]
        if language == "en":
            return _DEFAULT_LOCALE
        if language in _SHORT_DATE:
            return language
    return _DEFAULT_LOCALE
