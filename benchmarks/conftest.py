"""Example models for the suites, built locally by perfkit.examples (never downloaded)."""

import pytest

from perfkit.examples import write


@pytest.fixture(scope="session")
def example_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples")
    return lambda name: str(write(name, folder))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long benchmark (benchmarks/test_field_corpus.py: about an hour)")
