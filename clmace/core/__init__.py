"""Core data types every layer shares: the IR, dtypes, errors, atomic file writes, driver variables."""
