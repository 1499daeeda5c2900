"""Node configuration files and `poi init`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from node.config import Config, ConfigError, load_config, parse_config, write_config

POI = Path(sys.executable).with_name("poi")


def test_written_config_reads_back_identically(tmp_path):
    config = Config()
    config.node.roles = ["verifier", "proposer"]
    config.network.bootstrap = ["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWabc"]
    config.http.port = 8080
    write_config(tmp_path, config)
    assert load_config(tmp_path) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[node]\nroles = ['wizard']\n", "unknown role 'wizard'"),
        ("[node]\nroles = []\n", "at least one role"),
        ("[nodes]\n", "unknown section(s) nodes"),
        ("[http]\nprot = 1\n", "unknown key(s) prot"),
        ("[http]\nport = 'eighty'\n", "http.port: expected int"),
        ("[http]\nport = 70000\n", "not a port"),
        ("[http]\nenabled = 1\n", "http.enabled: expected bool"),
        ("[verifier]\nbyzantine = 'sneaky'\n", "verifier.byzantine"),
        ("[node\n", "config"),
    ],
)
def test_bad_config_is_refused_with_the_key_named(text, message):
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert message in str(info.value)


def test_missing_config_says_how_to_create_it(tmp_path):
    with pytest.raises(ConfigError, match="poi init"):
        load_config(tmp_path)


def test_poi_init_creates_key_and_config_and_refuses_to_overwrite(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "POI_KEY_PASSPHRASE": "test passphrase"}
    first = subprocess.run([str(POI), "init", str(tmp_path / "n"), "--role", "verifier"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "12D3KooW" in first.stdout
    assert load_config(tmp_path / "n").node.roles == ["verifier"]
    assert (tmp_path / "n/keys/node.key").exists()
    again = subprocess.run([str(POI), "init", str(tmp_path / "n")], capture_output=True,
                           text=True, env=env, timeout=120)
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    assert "Traceback" not in again.stderr
    bad = subprocess.run([str(POI), "init", str(tmp_path / "m"), "--role", "wizard"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "unknown role 'wizard'" in bad.stderr
    assert not (tmp_path / "m/keys").exists()
