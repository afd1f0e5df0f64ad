"""The image tests' fixture: the image from `make image`, built (or found cached) once per session."""

from __future__ import annotations

import pytest

from tests.image import docker


@pytest.fixture(scope="session")
def image() -> str:
    return docker.build()
