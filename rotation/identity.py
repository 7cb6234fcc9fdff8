"""The app's identity for Azure Storage, as Functions' identity-based connections name it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


def storage_credential(client_id: str | None = None, resource_id: str | None = None) -> TokenCredential:
    """The credential production uses, importing azure-identity only now.

    ``DefaultAzureCredential`` — managed identity in Azure, the developer's sign-in locally —
    with ``managed_identity_client_id`` for a user-assigned identity named by its client ID.
    A resource ID is not something ``DefaultAzureCredential`` takes, so that identity gets a
    ``ManagedIdentityCredential`` of its own.
    """
    if resource_id:
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(identity_config={"resource_id": resource_id})
    from azure.identity import DefaultAzureCredential

    if client_id:
        return DefaultAzureCredential(managed_identity_client_id=client_id)
    return DefaultAzureCredential()
