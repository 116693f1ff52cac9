"""Capturing and restoring drivers' own caches (PoCL's kernel cache, the CUDA JIT cache) with a program file."""
