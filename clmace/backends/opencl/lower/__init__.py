"""Lowering IR nodes to kernel launches, one module per kernel family; fusion decisions live here."""
