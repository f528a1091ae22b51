"""Fixtures of the UI tests: a demo store (History API, real files), the app on it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

pytest.importorskip("starlette", reason="the ui extra is not installed")

from ui_stores import build_demo_store  # noqa: E402


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("uistore") / "store"
    return root, build_demo_store(root)


@pytest.fixture()
def client(demo_store: tuple[Path, dict[str, str]]) -> Iterator[object]:
    from starlette.testclient import TestClient

    from airflowdsl.ui.app import create_app
    from airflowdsl.ui.data import StoreView

    view = StoreView.open(str(demo_store[0]))
    with TestClient(create_app(view)) as c:
        yield c
    view.close()
