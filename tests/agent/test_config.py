"""Layered settings: each layer wins over the one before; bad input names file, key, expectation."""

from __future__ import annotations

import pytest

from agent import exitcodes
from agent.config import ConfigError, ConfigSources, find_project_file, load_settings
from tests.conftest import run_flashcode


def sources(tmp_path, user: str | None = None, project: str | None = None, env=None,
            trusted: bool = True):
    u = p = None
    if user is not None:
        u = tmp_path / "user.toml"
        u.write_text(user)
    if project is not None:
        p = tmp_path / ".flashcode.toml"
        p.write_text(project)
    return ConfigSources(u, p, env or {}, project_trusted=trusted)


def test_defaults(tmp_path):
    s = load_settings(sources(tmp_path))
    assert s.model is None and s.approval == "ask" and s.max_steps == 100


def test_layers_in_order(tmp_path):
    src = sources(tmp_path, user='max_steps = 10\napproval = "read-only"\nmodel = "/u"\n',
                  project='max_steps = 20\nmodel = "/p"\n',
                  env={"FLASHCODE_MAX_STEPS": "30", "UNRELATED": "x"})
    s = load_settings(src)
    assert s.max_steps == 30  # env beats project beats user
    assert s.model == "/p"  # project beats user
    assert s.approval == "read-only"  # only the user file set it
    s = load_settings(src, {"max_steps": 40, "model": None})
    assert s.max_steps == 40 and s.model == "/p"  # a flag left unset does not erase a layer


def test_bad_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(sources(tmp_path, project="max_steps = = 3\n"))
    assert ".flashcode.toml" in str(err.value) and "TOML" in str(err.value)


def test_unknown_key_names_it_and_suggests(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(sources(tmp_path, user="max_step = 3\n"))
    msg = str(err.value)
    assert "user.toml" in msg and "'max_step'" in msg and "max_steps" in msg


def test_bad_value_names_key_and_expectation(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(sources(tmp_path, user='approval = "yolo"\n'))
    msg = str(err.value)
    assert "'approval'" in msg and "yolo" in msg and "read-only" in msg


def test_bad_environment_value(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(sources(tmp_path, env={"FLASHCODE_MAX_STEPS": "many"}))
    assert "environment" in str(err.value) and "max_steps" in str(err.value)


@pytest.mark.parametrize("toml, env, want", [
    ("", None, "auto"),
    ('resident = "on"\n', None, "on"),
    ("resident = false\n", None, "off"),                    # TOML booleans
    ('resident = "on"\n', {"FLASHCODE_RESIDENT": "0"}, "off"),  # the old 0/1 variable wins
    ("", {"FLASHCODE_RESIDENT": "Auto"}, "auto"),
])
def test_resident_setting(tmp_path, toml, env, want):
    assert load_settings(sources(tmp_path, project=toml, env=env)).resident == want


def test_bad_resident_value_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(sources(tmp_path, env={"FLASHCODE_RESIDENT": "sometimes"}))
    msg = str(err.value)
    assert "environment" in msg and "'resident'" in msg and "sometimes" in msg
    assert "auto" in msg and "float copies" in msg  # what is expected: the field's description


def test_only_the_repository_roots_project_file_counts(tmp_path):
    outer = tmp_path / "outer"
    repo = outer / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src" / "pkg").mkdir(parents=True)
    (outer / ".flashcode.toml").write_text("max_steps = 1\n")
    assert find_project_file(repo / "src" / "pkg") is None
    (repo / "src" / ".flashcode.toml").write_text("max_steps = 3\n")  # nested: never read
    assert find_project_file(repo / "src" / "pkg") is None
    (repo / ".flashcode.toml").write_text("max_steps = 2\n")
    assert find_project_file(repo / "src" / "pkg") == (repo / ".flashcode.toml").resolve()


def test_cli_reports_a_bad_project_file_with_exit_2(tmp_path, isolated_env):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".flashcode.toml").write_text("max_steps = -4\n")
    out = run_flashcode("-C", str(tmp_path), "doctor", env=isolated_env)
    assert out.returncode == exitcodes.USAGE
    assert "configuration error" in out.stderr and ".flashcode.toml" in out.stderr
    assert "max_steps" in out.stderr and "Traceback" not in out.stderr


def test_cli_user_config_is_read_from_xdg(tmp_path, isolated_env):
    cfg = tmp_path / "xdg" / "flashcode"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text('endpoint = "http://127.0.0.1:9/v1"\n')
    out = run_flashcode("-C", str(tmp_path), "doctor", env=isolated_env)
    assert "http://127.0.0.1:9/v1" in out.stdout


def test_the_command_line_model_beats_a_configured_endpoint(tmp_path):
    src = sources(tmp_path, user='endpoint = "http://127.0.0.1:9/v1"\nmodel_name = "x"\n')
    assert load_settings(src).endpoint == "http://127.0.0.1:9/v1"
    s = load_settings(src, {"model": "replay:/tmp/r.jsonl"})
    assert s.endpoint is None and s.model == "replay:/tmp/r.jsonl"
    s = load_settings(src, {"model": "/m", "endpoint": "http://127.0.0.1:8/v1"})
    assert s.endpoint == "http://127.0.0.1:8/v1"  # both given: the endpoint, as documented
