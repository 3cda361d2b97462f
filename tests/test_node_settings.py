"""Settings, check-config, routing rules, backoff."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.errors import ConfigError
from dicom_node.routing import route
from dicom_node.settings import RoutingSettings, Settings, load_settings

REPO = Path(__file__).resolve().parents[1]


def test_embedded_defaults_are_the_documented_ones() -> None:
    s = load_settings(None, environ={})
    assert s.queue.backend == "inprocess"
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("knee-node.sqlite")
    assert s.node.ae_title == "KNEE_NODE" and s.node.port == 11112
    assert s.model.device == "cpu"
    assert s.delivery.destinations == []
    assert s.node.admits("ANY_AE", "127.0.0.1")
    assert s.node.admits("ANY_AE", "::1")
    assert not s.node.admits("ANY_AE", "10.1.2.3")


def test_example_config_validates_and_lists_every_key() -> None:
    example = REPO / "config.example.yaml"
    s = load_settings(example, environ={})
    # relative paths of a file are resolved against its folder (issue 17 item 5)
    assert s.storage.data_dir == REPO / "var"
    defaults = Settings()
    assert s.model_copy(update={"storage": defaults.storage}) == defaults, (
        "the example documents the embedded defaults"
    )
    text = example.read_text()

    def keys(model: type, prefix: str = "") -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            out.append(name)
            ann = field.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                out += keys(ann)
        return out

    missing = [k for k in keys(Settings) if f"{k}:" not in text]
    assert not missing, f"config.example.yaml does not document {missing}"


def test_check_config_names_each_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "node:\n  port: 70000\n  ae_titel: X\n"
        "queue:\n  backend: rabbitmq\n"
        "delivery:\n  destinations:\n    - {name: p, host: h, port: 104}\n"
        "routing:\n  rules:\n    - {name: r, series_description: '(unclosed'}\n"
    )
    result = CliRunner().invoke(app, ["check-config", str(bad)])
    assert result.exit_code == 1
    out = result.output
    for key in ("node.port", "node.ae_titel: unknown key", "queue.backend",
                "delivery.destinations.0.ae_title", "routing.rules.0.series_description"):
        assert key in out, out
    good = CliRunner().invoke(app, ["check-config", str(REPO / "config.example.yaml")])
    assert good.exit_code == 0, good.output


def test_not_yaml_and_not_mapping_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("node: [unclosed")
    (tmp_path / "b.yaml").write_text("- 1\n- 2\n")
    for name in ("a.yaml", "b.yaml"):
        with pytest.raises(ConfigError):
            load_settings(tmp_path / name, environ={})


def test_password_from_environment_reaches_the_url(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("database:\n  url: postgresql+psycopg://knee@db:5432/knee\n")
    s = load_settings(cfg, environ={"KNEE_NODE_DATABASE__PASSWORD": "s3cr:t@"})
    assert s.database_url == "postgresql+psycopg://knee:s3cr%3At%40@db:5432/knee"
    assert "s3cr" not in repr(s), "the password must not show in reprs"
    env = {"KNEE_NODE_CONFIG": str(cfg), "KNEE_NODE_NODE__PORT": "4242"}
    assert load_settings(None, environ=env).node.port == 4242


def _ds(**kw: str) -> Dataset:
    ds = Dataset()
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize(
    ("attrs", "measure", "why"),
    [
        ({"Modality": "DX", "BodyPartExamined": "KNEE", "ViewPosition": "AP"}, True, "matched"),
        ({"Modality": "CR", "BodyPartExamined": "leg", "ViewPosition": "pa"}, True, "matched"),
        ({"Modality": "CT", "BodyPartExamined": "KNEE", "ViewPosition": "AP"}, False, "Modality"),
        ({"Modality": "DX", "BodyPartExamined": "CHEST", "ViewPosition": "AP"}, False, "Body"),
        ({"Modality": "DX", "BodyPartExamined": "KNEE", "ViewPosition": "LL"}, False, "ViewPos"),
        ({"Modality": "DX", "BodyPartExamined": "KNEE"}, False, "ViewPosition absent"),
    ],
)
def test_routing_rules(attrs: dict[str, str], measure: bool, why: str) -> None:
    d = route(_ds(**attrs), RoutingSettings())
    assert d.measure is measure
    assert why in d.reason


def test_routing_description_regex_and_missing_fields() -> None:
    rules = RoutingSettings.model_validate(
        {"rules": [{"name": "r", "allow_missing_view_position": True,
                    "series_description": r"knee.*\bap\b"}]}
    )
    yes = _ds(Modality="DX", BodyPartExamined="KNEE", SeriesDescription="Knee left AP")
    no = _ds(Modality="DX", BodyPartExamined="KNEE", SeriesDescription="Knee lateral")
    assert route(yes, rules).measure and route(yes, rules).rule == "r"
    assert not route(no, rules).measure and "SeriesDescription" in route(no, rules).reason


def test_backoff_grows_and_is_capped() -> None:
    d = Settings.model_validate(
        {"delivery": {"backoff_initial_s": 2, "backoff_factor": 3, "backoff_max_s": 50}}
    ).delivery
    assert [d.backoff(i) for i in (1, 2, 3, 4)] == [2, 6, 18, 50]
    with pytest.raises(ValueError, match="attempt"):
        d.backoff(0)
