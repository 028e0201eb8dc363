import pytest

from pipeline.config import Config, ConfigError, diff_params, load_config


def test_defaults_are_the_seed_settings():
    cfg = Config()
    assert cfg.backbone.model == "auto"
    assert cfg.pca.n_components == 50
    assert cfg.demo.per_class * 10 == 2000


def test_set_overrides_are_typed(tmp_path):
    cfg = load_config(None, ["pca.n_components=20", "pca.whiten=true", "extract.batch_size=8", "images=/x"])
    assert cfg.pca.n_components == 20 and cfg.pca.whiten is True
    assert cfg.extract.batch_size == 8 and cfg.images == "/x"


def test_file_then_overrides(tmp_path):
    path = tmp_path / "embdeck.toml"
    path.write_text('[pca]\nn_components = 30\nseed = 4\n[ingest]\nextensions = [".png"]\n')
    cfg = load_config(path, ["pca.seed=7"])
    assert (cfg.pca.n_components, cfg.pca.seed) == (30, 7)
    assert cfg.ingest.extensions == (".png",)


@pytest.mark.parametrize("override, message", [
    ("pca.n_componets=3", "unknown config key"),
    ("nosuch.key=3", "unknown config section"),
    ("pca.n_components=many", "cannot read"),
    ("pca.whiten=maybe", "cannot read"),
    ("pca", "key=value"),
])
def test_bad_overrides_say_what_is_wrong(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_file_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[pca\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_diff_params_names_the_change():
    old = {"pca": {"n_components": 50, "seed": 0}}
    new = {"pca": {"n_components": 20, "seed": 0}}
    assert diff_params(old, new) == ["pca.n_components 50 -> 20"]


def test_digest_changes_with_any_value():
    a, b = Config(), Config()
    assert a.digest() == b.digest()
    b.pca.seed = 1
    assert a.digest() != b.digest()
