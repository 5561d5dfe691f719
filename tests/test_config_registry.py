from dataclasses import dataclass, field

import pytest

from regbench import config, registry


@dataclass
class Inner:
    depth: int = 2
    name: str = "x"


@dataclass
class Conf:
    lr: float = 1e-3
    flag: bool = False
    sizes: tuple[int, ...] = (1, 2)
    weights: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_merge_order_and_types():
    c = config.merge(Conf(), {"lr": 1, "inner": {"depth": 3}})
    c = config.merge(c, config.parse_sets(["inner.name=y", "flag=true", "sizes=[3, 4]", "weights=/w.pt"]))
    assert c == Conf(lr=1.0, flag=True, sizes=(3, 4), weights="/w.pt", inner=Inner(3, "y"))
    assert isinstance(c.lr, float)


def test_unknown_and_mistyped_keys_fail_clearly():
    with pytest.raises(config.ConfigError, match=r"unknown config key 'inner.dpeth'.*inner.depth"):
        config.merge(Conf(), {"inner.dpeth": 1})
    with pytest.raises(config.ConfigError, match="expected bool"):
        config.merge(Conf(), {"flag": "yes please"})
    with pytest.raises(config.ConfigError, match="key=value"):
        config.parse_sets(["lr"])


def test_hash_is_canonical():
    assert config.config_hash(Conf()) == config.config_hash(config.merge(Conf(), {}))
    assert config.config_hash(Conf()) != config.config_hash(Conf(lr=2.0))


def test_unknown_name_lists_close_matches():
    with pytest.raises(registry.UnknownNameError, match=r"Did you mean .*phase_correlation.*Known methods:.*identity"):
        registry.method("phase_corelation")
    with pytest.raises(registry.UnknownNameError, match="unknown dataset 'nope'"):
        registry.dataset("nope")


def test_variant_card_is_data(tmp_path, monkeypatch):
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "phase_correlation.yaml").write_text("config: {upsample_factor: 20}\n")
    (tmp_path / "methods" / "pc-nowin.yaml").write_text("base: phase_correlation\nconfig: {window: false}\n")
    monkeypatch.setenv("REGBENCH_CARDS", str(tmp_path))
    assert "pc-nowin" in registry.names("method")
    model, spec = registry.build_method("pc-nowin", {"upsample_factor": 5})
    assert spec.target == registry.METHODS["phase_correlation"]
    assert (model.config.window, model.config.upsample_factor) == (False, 5)
    base, _ = registry.build_method("phase_correlation")
    assert (base.config.window, base.config.upsample_factor) == (True, 20)


def test_every_shipped_card_resolves():
    for kind in ("method", "dataset"):
        for name in registry.names(kind):
            spec = registry.get(kind, name)
            spec.resolve_config()  # imports the class and applies the card chain strictly
