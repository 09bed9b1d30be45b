"""Configuration from defaults, a YAML file and the environment; every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import AgentConfig, Secret
from agent.errors import ConfigError


def test_defaults_use_the_in_memory_store_and_default_domain() -> None:
    config = AgentConfig.from_env({})
    assert not config.store.redis_url
    assert config.domain.path.name == "domain.yaml"
    assert config.server.port == 8000


def test_environment_sets_any_field_and_aliases() -> None:
    config = AgentConfig.from_env(
        {
            "AGENT_REDIS_URL": "redis://:hunter2@cache:6379/0",
            "AGENT_STORE_CONVERSATION_TTL_S": "60",
            "AGENT_SERVER_PORT": "9001",
            "AGENT_NLU_QUANTIZE": "yes",
            "AGENT_RASA_ATTACHMENT_ALLOW_LIST": "https://a.example/, https://b.example/",
            "UNRELATED": "x",
        }
    )
    assert config.store.conversation_ttl_s == 60
    assert config.server.port == 9001
    assert config.nlu.quantize is True
    assert config.rasa.attachment_allow_list == ("https://a.example/", "https://b.example/")
    assert config.store.redis_url.reveal() == "redis://:hunter2@cache:6379/0"
    assert "hunter2" not in repr(config) and "hunter2" not in config.store.redis_url_for_logs


def test_file_then_environment_precedence(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("server:\n  port: 7000\n  host: 0.0.0.0\nstore:\n  key_prefix: bank\n")
    config = AgentConfig.from_env({"AGENT_SERVER_PORT": "7001"}, config_file=path)
    assert (config.server.port, config.server.host, config.store.key_prefix) == (7001, "0.0.0.0", "bank")


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        AgentConfig.from_env(
            {"AGENT_SERVER_PORT": "eighty", "AGENT_STORE_MAX_RETRIES": "-3", "AGENT_NLU_QUANTIZE": "maybe"}
        )
    message = str(caught.value)
    assert "server.port: expected an integer, got 'eighty'" in message
    assert "max_retries" in message and "nlu.quantize" in message


@pytest.mark.parametrize(
    "content, expected",
    [
        ("- just\n- a list\n", "expected a mapping of sections"),
        ("nope:\n  x: 1\n", "unknown config section 'nope'"),
        ("server:\n  colour: blue\n", "unknown setting server.colour"),
        ("server: [1, 2]\n", "expected a mapping"),
        ("server:\n  port: [unclosed\n", "not valid UTF-8 YAML"),
    ],
)
def test_bad_config_files_name_the_problem(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
        AgentConfig.from_env({}, config_file=path)


def test_missing_and_non_utf8_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        AgentConfig.from_env({}, config_file=tmp_path / "absent.yaml")
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"server:\n  host: caf\xe9\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        AgentConfig.from_env({}, config_file=path)


def test_profile_ttl_must_outlive_conversations() -> None:
    with pytest.raises(ConfigError, match="profiles outlive conversations"):
        AgentConfig.from_env({"AGENT_STORE_PROFILE_TTL_S": "10", "AGENT_STORE_CONVERSATION_TTL_S": "100"})


def test_secret_never_shows_its_value() -> None:
    secret = Secret("s3cr3t")
    assert "s3cr3t" not in repr(secret) and "s3cr3t" not in str(secret) and "s3cr3t" not in f"{secret}"
    assert secret.reveal() == "s3cr3t"
