from pathlib import Path

import pytest

from studybuddy.config import (
    env_files_for,
    load_env_files,
    parse_env_file,
    parse_languages,
    resolve_ca_bundle,
)
from studybuddy.errors import ConfigError, InputError


def test_env_file_parsing(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# comment\n\nexport A=1\nB='two words'\nC=\"quoted # not a comment\"\nD=plain # trailing\nE=\n"
    )
    assert parse_env_file(env) == {
        "A": "1",
        "B": "two words",
        "C": "quoted # not a comment",
        "D": "plain",
        "E": "",
    }


def test_env_file_bad_line_names_file_and_line(tmp_path: Path) -> None:
    env = tmp_path / "x.env"
    env.write_text("A=1\nthis is not an assignment\n")
    with pytest.raises(InputError, match=r"x\.env:2: expected KEY=value"):
        parse_env_file(env)


def test_missing_env_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such env file"):
        parse_env_file(tmp_path / "nope.env")


def test_environment_wins_and_debug_aliases_translate(tmp_path: Path) -> None:
    env = tmp_path / ".env.debug"
    env.write_text("DEBUG_MAX_WORKERS=5\nDEBUG_PARALLEL=true\nSTUDY_BUDDY_MODEL=from-file\nDEBUG_URLS=\n")
    environ = {"STUDY_BUDDY_MODEL": "from-env"}
    assert load_env_files([env], environ) == []
    assert environ == {
        "STUDY_BUDDY_MODEL": "from-env",
        "STUDY_BUDDY_WORKERS": "5",
        "STUDY_BUDDY_PARALLEL": "true",
    }


def test_env_files_set_only_study_buddy_and_debug_settings_and_the_api_key(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "ANTHROPIC_BASE_URL=https://collector.example\nSTUDY_BUDDY_TOR=off\nANTHROPIC_API_KEY=sk-ant-k\n"
        "DEBUG_PARALLEL=true\nREQUESTS_CA_BUNDLE=/tmp/theirs.pem\nHTTPS_PROXY=http://10.0.0.1:3128\n"
        "ANTHROPIC_API_KEY_2=x\n"
    )
    environ: dict[str, str] = {}
    warnings = load_env_files([env], environ)
    assert environ == {
        "STUDY_BUDDY_TOR": "off",
        "ANTHROPIC_API_KEY": "sk-ant-k",
        "STUDY_BUDDY_PARALLEL": "true",
    }
    assert warnings == [
        f"{env}: ignored ANTHROPIC_API_KEY_2, ANTHROPIC_BASE_URL, HTTPS_PROXY, REQUESTS_CA_BUNDLE"
        " (env files may set only STUDY_BUDDY_*, DEBUG_* and ANTHROPIC_API_KEY)"
    ]
    assert "collector" not in warnings[0] and "theirs" not in warnings[0]  # keys only, never values


def test_env_file_with_the_api_key_is_ignored_by_git() -> None:
    ignored = (Path(__file__).parent.parent / ".gitignore").read_text().splitlines()
    assert "/.env" in ignored or ".env" in ignored


def test_env_files_for_command_line(tmp_path: Path) -> None:
    (tmp_path / ".env.debug").write_text("A=1\n")
    assert env_files_for(["--debug"], tmp_path) == [tmp_path / ".env.debug"]
    assert env_files_for(["--env-file", "x.env", "--debug"], tmp_path) == [Path("x.env")]
    assert env_files_for(["--env-file=y.env"], tmp_path) == [Path("y.env")]
    assert env_files_for(["url"], tmp_path) == []
    (tmp_path / ".env").write_text("B=2\n")
    assert env_files_for(["url"], tmp_path) == [tmp_path / ".env"]


def test_ca_bundle_resolution_order(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    other = tmp_path / "other.pem"
    other.write_text("y")
    assert resolve_ca_bundle(str(ca), {"REQUESTS_CA_BUNDLE": str(other)}) == str(ca)
    assert resolve_ca_bundle(None, {"REQUESTS_CA_BUNDLE": str(other), "SSL_CERT_FILE": str(ca)}) == str(other)
    assert resolve_ca_bundle(None, {"SSL_CERT_FILE": str(ca)}) == str(ca)
    assert resolve_ca_bundle(None, {}) is None
    with pytest.raises(ConfigError, match=r"SSL_CERT_FILE '/no/such\.pem': no such CA bundle file"):
        resolve_ca_bundle(None, {"SSL_CERT_FILE": "/no/such.pem"})


def test_languages() -> None:
    assert parse_languages("en, de ,pt-BR") == ("en", "de", "pt-BR")
    for bad in ("", ",", "en;rm -rf"):
        with pytest.raises(InputError, match="--lang"):
            parse_languages(bad)
