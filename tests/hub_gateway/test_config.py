"""Start-up settings: a mistake is one line naming the variable and the fix, exit 2, no traceback."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from hub_gateway.config import ConfigError, load, parse_callers

from .conftest import TEAM_A_TOKEN

BASE = {"S3_BUCKET": "b", "S3_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s", "GATEWAY_CALLERS_FILE": "", "GATEWAY_CALLERS": "{}"}


@pytest.mark.parametrize(("changes", "says"), [
    ({"S3_BUCKET": ""}, "S3_BUCKET"),
    ({"HF_ENDPOINT": "huggingface.co"}, "HF_ENDPOINT='huggingface.co' must start with http"),
    ({"GATEWAY_UPSTREAM_TIMEOUT": "soon"}, "GATEWAY_UPSTREAM_TIMEOUT='soon' is not a number"),
    ({"PORT": "http"}, "PORT='http'"),
    ({"GATEWAY_PREFETCH_CHUNKS": "-1"}, "GATEWAY_PREFETCH_CHUNKS='-1' must be a whole number from 0 to 16"),
    ({"GATEWAY_CHUNK_KB": "8"}, "GATEWAY_CHUNK_KB='8'"),
    ({"GATEWAY_ALLOW_REPOS": "acme/x/y"}, "GATEWAY_ALLOW_REPOS entry 'acme/x/y'"),
    ({"GATEWAY_CALLERS": "{"}, "GATEWAY_CALLERS is not valid JSON"),
    ({"GATEWAY_CALLERS": '{"Team A": {"token": "' + "x" * 30 + '"}}'}, "must be a DNS label"),
    ({"GATEWAY_CALLERS": '{"a": {"token": "short"}}'}, "at least 24 characters"),
    ({"GATEWAY_CALLERS": '{"a": {}}'}, "exactly one of token or token_sha256"),
    ({"GATEWAY_CALLERS": '{"a": {"token": "' + "x" * 30 + '", "delet": []}}'}, "unknown key(s) ['delet']"),
    ({"GATEWAY_CALLERS": '{"a": {"token": "' + "x" * 30 + '", "delete": ["scratch-*"]}}'}, "must name the owner"),
    ({"GATEWAY_CALLERS": json.dumps({"a": {"token": "x" * 30}, "b": {"token": "x" * 30}})}, "two callers"),
    ({"GATEWAY_CALLERS": "", "GATEWAY_CALLERS_FILE": "/nonexistent/callers.json"}, "no such file"),
])
def test_bad_settings_are_one_line_naming_the_key(changes, says):
    with pytest.raises(ConfigError) as info:
        load({**BASE, **changes})
    assert says in str(info.value)
    assert "\n" not in str(info.value)


def test_the_process_exits_2_with_one_line_and_no_traceback():
    done = subprocess.run([sys.executable, "-m", "hub_gateway"], env={"PATH": "/usr/bin:/bin", **BASE,
                                                                      "GATEWAY_CALLERS": "[1]"},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert "must be a JSON object" in done.stderr


def test_callers_from_a_mounted_secret_directory_and_by_digest(tmp_path):
    (tmp_path / "callers.json").write_text(json.dumps({
        "team-a": {"token": TEAM_A_TOKEN, "write": ["team-a"], "delete": ["team-a/scratch-*"]},
        "team-b": {"token_sha256": hashlib.sha256(b"b" * 32).hexdigest(), "write": ["team-b-*"]},
    }))
    s = load({**BASE, "GATEWAY_CALLERS": "", "GATEWAY_CALLERS_FILE": str(tmp_path)})
    a = s.callers.authenticate(TEAM_A_TOKEN)
    b = s.callers.authenticate("b" * 32)
    assert a.name == "team-a" and b.name == "team-b"
    assert s.callers.authenticate("b" * 31) is None and s.callers.authenticate("") is None
    assert a.may_write("team-a") and not a.may_write("team-ab")
    assert a.may_delete("team-a/scratch-1") and not a.may_delete("team-a/prod")
    assert b.may_write("team-b-research") and not b.may_delete("team-b-research/x")
    assert TEAM_A_TOKEN not in repr(s) and TEAM_A_TOKEN not in repr(a)


def test_no_callers_file_means_no_callers():
    s = load({**BASE, "GATEWAY_CALLERS": "", "GATEWAY_CALLERS_FILE": ""})
    assert s.callers.callers == ()
    assert parse_callers("{}", "x").authenticate("anything") is None
