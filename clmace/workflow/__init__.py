"""The MACE-style workflow on top of sessions: compile, tune, validate, bench, info, inspect, report."""
