"""akv-rotator's core: the rotation protocol, the Key Vault adapter, targets and settings.

This package never imports ``azure.functions``, ``handlers`` or ``function_app``: the
import-linter contracts in ``pyproject.toml`` enforce it, so the core can be driven by the
Functions app, the CLI, the demo and the tests alike.
"""
