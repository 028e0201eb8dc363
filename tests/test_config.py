import dataclasses

import pytest

from pipeline.engine.config import Config, ConfigError, diff_params, load_config


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
    path.write_text('[pca]\nn_components = 30\n[tsne]\nseed = 4\n[ingest]\nextensions = [".png"]\n')
    cfg = load_config(path, ["tsne.seed=7"])
    assert (cfg.pca.n_components, cfg.tsne.seed) == (30, 7)
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
    a, b = Config(), load_config(None, ["tsne.seed=1"])
    assert a.digest() == Config().digest()
    assert a.digest() != b.digest()


def test_the_config_is_frozen_once_built():
    cfg = load_config(None, ["pca.n_components=20"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.pca.n_components = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.out = "elsewhere"


@pytest.mark.parametrize("override, message", [
    ("backbone.preprocess=thumbnial", "backbone.preprocess = 'thumbnial' must be one of: timm, thumbnail"),
    ("tsne.perplexity=0.5", "tsne.perplexity = 0.5 must be at least 1"),
    ("tsne.method=exact", "tsne.method = 'exact' must be one of: auto, bh, fft"),
    ("extract.device=tpu", "extract.device = 'tpu' must be one of: auto, cpu, cuda, mps"),
    ("parametric.holdout=0", "parametric.holdout = 0.0 must be greater than 0 and at most 0.9"),
    ("patches.threshold=1.5", "patches.threshold = 1.5 must be at most 1"),
    ("retrieval.folds=1", "retrieval.folds = 1 must be at least 2"),
    ("seed=-1", "seed = -1 must be at least 0"),
])
def test_rules_are_checked_when_the_config_is_built(override, message, tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_config(None, [override])
    assert str(raised.value) == message and "\n" not in str(raised.value)
    section, key = override.split("=")[0].rpartition(".")[::2]
    path = tmp_path / "bad.toml"
    value = override.split("=")[1]
    path.write_text(f"[{section}]\n{key} = {value if value.replace('.', '').lstrip('-').isdigit() else repr(value)}\n"
                    if section else f"{key} = {value}\n")
    with pytest.raises(ConfigError, match="must be"):
        load_config(path)
    with pytest.raises(ConfigError, match="must be"):  # building one by hand is checked too
        Config(seed=-1)


def test_one_seed_gives_every_section_its_seed_unless_set():
    cfg = load_config(None, ["seed=7", "tsne.seed=3"])
    assert (cfg.neighbours.seed, cfg.umap.seed, cfg.clusters.seed, cfg.parametric.seed, cfg.tsne.seed) == (7, 7, 7, 7, 3)
    assert cfg.demo.seed == 0, "the demo set is data: the run's seed does not pick other images"
    default = Config()
    assert default.seed == 0 and default.umap.seed == 0 and default.fidelity.seed == 0
    assert diff_params(default.section("umap"), cfg.section("umap")) == ["seed 0 -> 7"]


def test_settings_declared_unkeyed_stay_out_of_cache_keys_and_nothing_else_does(tmp_path):
    """How extraction runs (engine, workers, retries) is recorded but not keyed: equal outputs either way. The
    backbone's name and weights file are keyed by what they resolve to (the network and its weights' sha256, in
    the extract stage's fingerprint); the hub's timeout and the comparison list change no output of theirs. How
    many threads ingest checks files with changes nothing it finds; the demo folder is a place (its listing is in
    ingest's fingerprint), not a value; so is the embedding store's folder (``store``), and how many rows a store
    segment gets changes no row."""
    from pipeline.registry import STAGES
    from pipeline.engine.runner import Runner

    from pipeline.engine.config import sections

    unkeyed = {f"{name}.{f.name}" for name in sections()
               for f in dataclasses.fields(getattr(Config(), name)) if not f.metadata.get("keyed", True)}
    assert unkeyed == {"extract.engine", "extract.workers", "extract.retries", "backbone.model", "backbone.weights",
                       "backbone.hub_timeout_s", "backbone.compare", "ingest.workers", "demo.folder",
                       "extract.store_segment_rows"}
    where = [f"images={tmp_path}", f"out={tmp_path}"]
    ray = load_config(None, ["extract.engine=ray", "extract.workers=3", "extract.retries=0", *where])
    assert ray.section("extract")["engine"] == "ray" and "engine" not in ray.key_section("extract")
    extract = next(stage for stage in STAGES if stage.name == "extract")
    keys = [Runner(cfg, STAGES).key_record(extract, {})["params"] for cfg in (load_config(None, where), ray)]
    assert keys[0] == keys[1]
    shared = load_config(None, [f"store={tmp_path / 'shared'}", "extract.store_segment_rows=8", *where])
    assert Runner(shared, STAGES).key_record(extract, {})["params"] == keys[0]
    other = load_config(None, ["extract.batch_size=8", *where])
    assert Runner(other, STAGES).key_record(extract, {})["params"] != keys[0], "a keyed setting still changes the key"
