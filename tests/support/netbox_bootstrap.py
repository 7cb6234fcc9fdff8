"""Run by NetBox's own Python after a dump is restored: check it, then add the admin and a token.

It runs inside NetBox's Python 3.12 virtualenv (``DJANGO_SETTINGS_MODULE=netbox.settings``,
``NETBOX_ROOT`` set by ``tests/support/netbox.py``), in parallel with gunicorn's start-up, and
prints one JSON object on stdout:

- ``{"pending": [...]}`` when the restored database lacks migrations that the installed NetBox
  has: the committed dump is stale and must be rebuilt;
- ``{"admin_id": ..., "admin_token": "nbt_<key>.<secret>"}`` otherwise.

The superuser and its token are made here rather than kept in the dump, so the dump holds
nothing but the schema and the data migrations create, and the plaintext of a v2 token (which
NetBox stores only as an HMAC) is known to the fixture. This is plain Django, not
``netbox createsuperuser`` + ``netbox shell``: one interpreter start instead of two (each costs
NetBox several seconds), and no system checks, which would import the URLconf and GraphQL
schema (about 9 s).

The admin's password comes from ``ROTATOR_NETBOX_ADMIN_PASSWORD`` (not argv, which ``ps`` shows).
"""

import json
import os

import django

django.setup()

from django.db import connection  # noqa: E402  (only importable after setup)
from django.db.migrations.executor import MigrationExecutor  # noqa: E402
from users.choices import TokenVersionChoices  # noqa: E402
from users.models import Token, User  # noqa: E402


def main(admin_password: str) -> dict[str, object]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        return {"pending": [f"{migration.app_label}.{migration.name}" for migration, _ in plan]}
    admin = User.objects.create_superuser("admin", "admin@example.invalid", admin_password)
    token = Token(user=admin, version=TokenVersionChoices.V2, description="akv-rotator test admin")
    token.full_clean()
    token.save()
    return {"admin_id": admin.pk, "admin_token": f"nbt_{token.key}.{token.token}"}


if __name__ == "__main__":
    print(json.dumps(main(os.environ["ROTATOR_NETBOX_ADMIN_PASSWORD"])))
