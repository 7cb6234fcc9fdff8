"""The edge: Functions triggers in, typed values to the core, outcomes back as Functions semantics."""
