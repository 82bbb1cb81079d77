"""The LLaVA fixture builders behind tools/make_fixtures.py (see tests/fixtures/README.md)."""
