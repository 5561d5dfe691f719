from __future__ import annotations

import pytest

from regbench import registry


@pytest.fixture
def tiny(monkeypatch):
    """Register the in-memory ``tiny`` dataset for one test."""
    monkeypatch.setitem(registry.DATASETS, "tiny", "tinydata:TinyDataset")
    return "tiny"


@pytest.fixture
def results(tmp_path, monkeypatch):
    """A results folder with its own MLflow store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "results"
