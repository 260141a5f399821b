"""Shared by the interop suites: this folder's modules (switchboard_stack, fake_model) are
importable from every suite below it (pytest puts a conftest's folder on sys.path)."""
