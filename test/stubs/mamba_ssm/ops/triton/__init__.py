"""Test stand-in (see test/stubs/README.md)."""
