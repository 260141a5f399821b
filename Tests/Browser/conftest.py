"""Fixtures for the browser tests (see browser_harness.py)."""

import pytest

from browser_harness import Stack, chrome, start_model


@pytest.fixture(scope="session")
def model():
    server = start_model()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="session")
def stack(model, tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("switchboard"), model)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture
def browser():
    driver = chrome()
    yield driver
    driver.quit()
