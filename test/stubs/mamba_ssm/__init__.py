"""Test stand-in for state-spaces/mamba's package (see test/stubs/README.md)."""
__version__ = "0.0.0+eventfx-test-stub"
