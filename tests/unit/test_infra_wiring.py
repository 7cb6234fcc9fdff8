"""infra/terraform is wired to the code it deploys: read as data, compared with the code.

- the Event Grid subscription delivers to the function ``function_app`` registers for Event
  Grid, exactly the event types the handler acts on, in the Event Grid schema, with retries
  and dead-lettering;
- every app setting the code reads is in Terraform and in ``local.settings.example.json``
  (or is named below as deliberately absent, with the reason), and neither holds one the
  code and the platform ignore; literal Terraform defaults equal the README's;
- the role assignments are exactly those the code's calls need, each scoped as narrowly as
  the call allows.

Each check is a function returning its problems, so the tests at the end can break a copy of
the Terraform (rename the function, drop a setting, widen a role) and watch the check fail.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rotation import settings as settings_module
from rotation.events import EVENT_PREFIX, HANDLED_KINDS
from tests.support.terraform import Module, Resource, load_module, parse

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "infra" / "terraform" / "modules" / "akv-rotator"
EXAMPLE = ROOT / "infra" / "terraform" / "examples" / "basic"
SUBSCRIPTION = "azurerm_eventgrid_system_topic_event_subscription"
SETTING_NAME = re.compile(
    r"^(ROTATOR_[A-Z_]+|AzureWebJobsStorage(__\w+)?|APPLICATIONINSIGHTS_CONNECTION_STRING)$")

#: Read by the code, never set in Azure, and why.
LOCAL_ONLY = {
    "ROTATOR_KEYVAULT_STATIC_TOKEN": "a fixed bearer token for the local Key Vault twin; the "
                                     "settings refuse it for any remote vault",
    "ROTATOR_KEYVAULT_CA_BUNDLE": "the local twins' own CA; Azure's endpoints use the system store",
    "ROTATOR_EVENTS_CA_BUNDLE": "the local Event Grid twin's CA",
}
#: Other forms of a setting Terraform sets one way (identity-based storage by account name).
NOT_CHOSEN = {
    "AzureWebJobsStorage__tableServiceUri": "the account name form is used",
    "AzureWebJobsStorage__credential": "the system-assigned identity needs none",
    "AzureWebJobsStorage__clientId": "user-assigned identities only",
    "AzureWebJobsStorage__managedIdentityResourceId": "user-assigned identities only",
    "AzureWebJobsStorage__clientSecret": "a local service principal only; refused when hosted",
    "AzureWebJobsStorage__blobServiceUri": "the account name form is used",
    "AzureWebJobsStorage__queueServiceUri": "the account name form is used",
}
#: Local runs use Azurite's connection string (``UseDevelopmentStorage=true``), not an identity.
IDENTITY_ONLY = {"AzureWebJobsStorage__accountName", *NOT_CHOSEN}
#: Read by the Functions platform or the Python worker rather than by our code.
PLATFORM = {
    "PYTHON_ISOLATE_WORKER_DEPENDENCIES": "the worker: load the app's azure-functions (ADR 0006)",
    "PYTHON_THREADPOOL_THREAD_COUNT": "the worker: invocations at a time per instance (ADR 0007)",
    "FUNCTIONS_WORKER_RUNTIME": "Core Tools locally (Flex Consumption sets the runtime itself)",
    "AzureWebJobsFeatureFlags": "Core Tools locally: worker indexing of the v2 model",
}

#: Role -> (principal, scope) as Terraform expressions, and the code path that needs it.
ROLES = {
    "Key Vault Secrets Officer": ("function identity", "each vault", "rotation/keyvault.py: read, "
                                  "write and disable versions, list properties; nothing else"),
    "Key Vault Secrets User": ("function identity", "the targets secret",
                               "App Service resolves the ROTATOR_TARGETS Key Vault reference"),
    "Storage Blob Data Owner": ("function identity", "the storage account",
                                "the Functions host: deployment package, timer locks, keys"),
    "Storage Table Data Contributor": ("function identity", "the storage account",
                                       "rotation/journal/tables.py: the journal's rows"),
    "Storage Queue Data Contributor": ("function identity", "the storage account",
                                       "rotation/queue.py sends work; the queue trigger reads, "
                                       "deletes and poisons it"),
    "EventGrid Data Sender": ("function identity", "the rotation events topic",
                              "rotation/publishing.py: rotation events out"),
    "Storage Blob Data Contributor": ("system topic identity", "the dead-letter container",
                                      "Event Grid writes dead-lettered events"),
    "Storage Blob Data Reader": ("operators", "the dead-letter container",
                                 "people reading dead-lettered events (docs/runbooks)"),
}
PRINCIPALS = {
    "function identity": r"azurerm_function_app_flex_consumption\.this\.identity\[0\]\.principal_id",
    "system topic identity": r"azurerm_eventgrid_system_topic\.vault\[.+\]\.identity\[0\]\.principal_id",
    "operators": r"each\.value",
}
SCOPES = {
    "each vault": r"^\$\{each\.value\.resource_id\}$",
    "the targets secret": r"var\.targets_secret_vault_id",
    "the storage account": r"^\$\{azurerm_storage_account\.this\.id\}$",
    "the rotation events topic": r"var\.rotation_events\.resource_id",
    "the dead-letter container": r"^\$\{azurerm_storage_container\.dead_letter\.id\}$",
}


@pytest.fixture(scope="module")
def module() -> Module:
    if not MODULE.is_dir():
        pytest.fail(f"{MODULE} is missing")
    return load_module(MODULE)


# -- what the code reads ------------------------------------------------------------------


def settings_the_code_reads() -> set[str]:
    """Every app setting name rotation/settings.py reads, and every %SETTING% the function
    bindings resolve (the timers' schedules)."""
    names = {value for value in vars(settings_module).values()
             if isinstance(value, str) and SETTING_NAME.match(value)}
    for value in vars(settings_module).values():
        if isinstance(value, tuple):
            names.update(v for v in value if isinstance(v, str) and SETTING_NAME.match(v))
    names.update(re.findall(r"%([A-Z_]+)%", (ROOT / "function_app.py").read_text()))
    return names


@functools.cache
def event_grid_functions() -> frozenset[str]:
    """Indexed once: ``get_functions`` refuses to index an app twice (azure-functions 1.x)."""
    import function_app

    function_app.app.functions_bindings = None
    return frozenset({f.get_function_name() for f in function_app.app.get_functions()
            if any(b.type == "eventGridTrigger" for b in f.get_bindings())})


def readme_defaults() -> dict[str, str]:
    """The Configuration table's literal defaults: | `NAME` | `value` | ..."""
    rows = re.findall(r"^\| `([A-Za-z_]+)` \| `([^`]*)` \|", (ROOT / "README.md").read_text(), re.M)
    return dict(rows)


# -- the checks ---------------------------------------------------------------------------------


def subscription_problems(module: Module, functions: frozenset[str]) -> list[str]:
    problems: list[str] = []
    subscriptions = module.of_type(SUBSCRIPTION)
    if len(subscriptions) != 1:
        return [f"expected one {SUBSCRIPTION}, found {len(subscriptions)}"]
    body = subscriptions[0].body
    endpoint = (body.get("azure_function_endpoint") or [{}])[0].get("function_id", "")
    named = re.search(r"/functions/([A-Za-z0-9_]+)$", endpoint)
    if named is None or named[1] not in functions:
        problems.append(f"the endpoint {endpoint!r} names no Event Grid function of function_app "
                        f"({sorted(functions)})")
    wanted = {EVENT_PREFIX + kind for kind in HANDLED_KINDS}
    if set(body.get("included_event_types", [])) != wanted:
        problems.append(f"included_event_types {body.get('included_event_types')} != {sorted(wanted)}")
    if body.get("event_delivery_schema") != "EventGridSchema":
        problems.append("event_delivery_schema must be EventGridSchema (the handler's trigger type)")
    if not body.get("retry_policy"):
        problems.append("no retry_policy")
    if not body.get("storage_blob_dead_letter_destination"):
        problems.append("no dead-letter destination")
    return problems


def settings_problems(terraform: set[str], local: set[str], code: set[str]) -> list[str]:
    problems = [f"the code reads {name} but Terraform does not set it"
                for name in sorted(code - terraform - set(LOCAL_ONLY) - set(NOT_CHOSEN))]
    problems += [f"the code reads {name} but local.settings.example.json lacks it"
                 for name in sorted(code - local - IDENTITY_ONLY)]
    known = code | set(PLATFORM)
    problems += [f"Terraform sets {name}, which nothing reads" for name in sorted(terraform - known)]
    problems += [f"local.settings.example.json sets {name}, which nothing reads"
                 for name in sorted(local - known)]
    problems += [f"Terraform sets {name}, a local-only setting: {why}"
                 for name, why in LOCAL_ONLY.items() if name in terraform]
    return problems


def role_problems(module: Module) -> list[str]:
    problems: list[str] = []
    assignments = module.of_type("azurerm_role_assignment")
    seen: set[str] = set()
    for resource in assignments:
        role = resource.body.get("role_definition_name")
        if "role_definition_id" in resource.body or role not in ROLES:
            problems.append(f"{resource.address}: role {role!r} is not one the code needs")
            continue
        seen.add(role)
        principal, scope, _why = ROLES[role]
        if not re.search(PRINCIPALS[principal], str(resource.body.get("principal_id", ""))):
            problems.append(f"{resource.address}: {role} must go to the {principal}")
        if not re.search(SCOPES[scope], str(resource.body.get("scope", ""))):
            problems.append(f"{resource.address}: {role} must be scoped to {scope}, "
                            f"not {resource.body.get('scope')!r}")
    problems += [f"no assignment of {role}, which {why}" for role, (_p, _s, why) in ROLES.items()
                 if role not in seen]
    return problems


# -- the tests ----------------------------------------------------------------------------------


def test_every_terraform_file_parses() -> None:
    files = sorted((ROOT / "infra").rglob("*.tf"))
    assert len(files) >= 8
    for path in files:
        parse(path)  # raises on a syntax error


def test_the_subscription_delivers_the_handlers_events_to_the_registered_function(module: Module) -> None:
    assert subscription_problems(module, event_grid_functions()) == []


def test_app_settings_are_exactly_those_the_code_reads(module: Module) -> None:
    terraform = set(module.locals["app_settings"])
    local = set(json.loads((ROOT / "local.settings.example.json").read_text())["Values"])
    assert settings_problems(terraform, local, settings_the_code_reads()) == []


def test_literal_terraform_defaults_are_the_readmes(module: Module) -> None:
    defaults = readme_defaults()
    assert len(defaults) >= 15
    compared = 0
    for name, expression in module.locals["app_settings"].items():
        variable = re.fullmatch(r"\$\{(?:tostring\()?var\.([a-z_]+)\)?\}", str(expression))
        if name not in defaults or variable is None:
            continue
        default = module.variables[variable[1]].get("default")
        if isinstance(default, float) and default.is_integer():
            default = int(default)
        assert str(default) == defaults[name], f"{name}: Terraform {default!r}, README {defaults[name]!r}"
        compared += 1
    assert compared >= 12


def test_role_assignments_are_exactly_what_the_code_needs(module: Module) -> None:
    assert role_problems(module) == []


def test_no_account_key_or_connection_string_reaches_the_app(module: Module) -> None:
    settings = module.locals["app_settings"]
    assert settings.get("AzureWebJobsStorage") == "", "blank: the identity form below is used"
    assert "AzureWebJobsStorage__accountName" in settings
    text = "\n".join(path.read_text() for path in module.files)
    assert "primary_access_key" not in text and "primary_connection_string" not in text
    for name, value in settings.items():
        assert "AccountKey=" not in str(value), name


def test_the_example_uses_the_module(module: Module) -> None:
    example = load_module(EXAMPLE)
    text = "\n".join(path.read_text() for path in example.files)
    assert "../../modules/akv-rotator" in text
    assert (EXAMPLE / "terraform.tfvars.example").is_file()


# -- each check fails when the wiring breaks ----------------------------------------------------


def broken(module: Module, address: str, **changes: Any) -> Module:
    copied = copy.deepcopy(module)
    copied.resources = [replace(r, body={**r.body, **changes}) if r.address == address else r
                        for r in copied.resources]
    return copied


def test_a_renamed_function_breaks_the_subscription_check(module: Module) -> None:
    assert subscription_problems(module, frozenset({"key_vault_events"}))
    subscription = module.of_type(SUBSCRIPTION)[0]
    endpoint = [{"function_id": "${azurerm_function_app_flex_consumption.this.id}/functions/rotate_secret"}]
    assert subscription_problems(broken(module, subscription.address, azure_function_endpoint=endpoint),
                                 event_grid_functions())
    fewer = broken(module, subscription.address,
                   included_event_types=["Microsoft.KeyVault.SecretNearExpiry"])
    assert any("included_event_types" in p for p in subscription_problems(fewer, event_grid_functions()))


def test_a_dropped_or_stray_setting_breaks_the_settings_check(module: Module) -> None:
    terraform = set(module.locals["app_settings"])
    local = set(json.loads((ROOT / "local.settings.example.json").read_text())["Values"])
    code = settings_the_code_reads()
    assert settings_problems(terraform - {"ROTATOR_GRACE_HOURS"}, local, code) == [
        "the code reads ROTATOR_GRACE_HOURS but Terraform does not set it"]
    assert settings_problems(terraform, local - {"ROTATOR_LEASE_SECONDS"}, code) == [
        "the code reads ROTATOR_LEASE_SECONDS but local.settings.example.json lacks it"]
    assert settings_problems(terraform | {"ROTATOR_GRACE_HOUR"}, local, code) == [
        "Terraform sets ROTATOR_GRACE_HOUR, which nothing reads"]
    assert settings_problems(terraform | {"ROTATOR_KEYVAULT_STATIC_TOKEN"}, local, code)


def test_a_widened_role_breaks_the_role_check(module: Module) -> None:
    table = next(r for r in module.of_type("azurerm_role_assignment")
                 if r.body.get("role_definition_name") == "Storage Table Data Contributor")
    wider = broken(module, table.address, role_definition_name="Storage Account Contributor")
    assert role_problems(wider)
    subscription_wide = broken(module, table.address, scope="${data.azurerm_subscription.current.id}")
    assert any("scoped" in p for p in role_problems(subscription_wide))
    officer = next(r for r in module.of_type("azurerm_role_assignment")
                   if r.body.get("role_definition_name") == "Key Vault Secrets Officer")
    administrator = broken(module, officer.address, role_definition_name="Key Vault Administrator")
    assert role_problems(administrator)
    extra = copy.deepcopy(module)
    extra.resources.append(Resource("azurerm_role_assignment", "owner", {
        "role_definition_name": "Owner", "scope": "${azurerm_storage_account.this.id}",
        "principal_id": "${azurerm_function_app_flex_consumption.this.identity[0].principal_id}"}))
    assert role_problems(extra) == ["azurerm_role_assignment.owner: role 'Owner' is not one the code needs"]


def test_per_instance_concurrency_is_what_adr_0007_decided(module: Module) -> None:
    """host.json, Terraform's app settings and the ADR that justifies them state one set of
    numbers: a change to one is a change to all three."""
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    threads = module.locals["app_settings"]["PYTHON_THREADPOOL_THREAD_COUNT"]
    adr = (ROOT / "docs" / "adr" / "0007-per-instance-concurrency.md").read_text()
    decision = adr.split("## Decision", 1)[1].split("## Consequences", 1)[0]
    assert f"`PYTHON_THREADPOOL_THREAD_COUNT={threads}`" in decision
    for setting in ("batchSize", "newBatchThreshold", "maxDequeueCount"):
        assert f"`{setting}` {queues[setting]}" in decision, setting
    visibility = queues["visibilityTimeout"]
    assert visibility == "00:00:30" and "`visibilityTimeout` 30 s" in decision
    local = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert local["PYTHON_THREADPOOL_THREAD_COUNT"] == threads
