"""The engine check family: its test module(s), cases/ (data) and faults.toml (the fault table)."""
