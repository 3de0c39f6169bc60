"""Fixtures for the Spark-like engine's tests: a local-mode context shared by a module."""
from __future__ import annotations

from typing import Iterator

import pytest

from corral.examples.spark import Context


@pytest.fixture(scope="module")
def ctx() -> Iterator[Context]:
    with Context("local[2]", progress=False) as context:
        yield context
