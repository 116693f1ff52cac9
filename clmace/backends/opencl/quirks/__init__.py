"""Driver and host workarounds: the PoCL CPU target and the child-process driver check."""
