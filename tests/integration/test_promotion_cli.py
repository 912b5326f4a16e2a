"""`rakuten-ml registry ...` in subprocesses: JSON out, typed errors exit 2, two processes racing to promote."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rakuten_ml.promotion import aliases
from rakuten_ml.promotion.audit import Actor
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from tests.support.paths import REPO_ROOT
from tests.support.promotion import events, register_versions


def registry_cli(settings: Settings, *args: str, user: str = "ci-user") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAKUTEN_")} | {
        "RAKUTEN_HOME": str(settings.home),
        "RAKUTEN_DATABASE_URL": settings.database_url,
        "RAKUTEN_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "RAKUTEN_REGISTERED_MODEL_NAME": settings.registered_model_name,
        "USER": user,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "rakuten_ml.cli", "registry", *args], env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


@pytest.mark.slow
def test_registry_commands_and_a_race_between_two_processes(psettings):
    """Three rounds of processes started together (each pays the mlflow import once)."""
    platform = Platform(psettings).prepare()
    v1, v2, v3 = register_versions(psettings, [0.85, 0.86, 0.87])
    aliases.promote(platform, v1, actor=Actor("setup"), reason="first model", expected_champion=None)

    racers = [registry_cli(psettings, "promote", v, "--actor", f"ops-{v}", "--expect-champion", v1) for v in (v2, v3)]
    results = [finish(p) for p in racers]
    assert sorted(rc for rc, _, _ in results) == [0, 1], results  # the loser: a runtime error (exit 1)
    (winner_out,) = [out for rc, out, _ in results if rc == 0]
    (loser_err,) = [err for rc, _, err in results if rc == 1]
    winner = json.loads(winner_out)["to_version"]
    assert json.loads(winner_out)["after"] == {"champion": winner, "challenger": None, "previous-champion": v1}
    assert loser_err.startswith("error: ") and "expected '1'" in loser_err and "registry status" in loser_err

    rollback, status = registry_cli(psettings, "rollback", "--reason", "bad canary"), registry_cli(psettings, "status")
    rc, out, err = finish(rollback)
    assert rc == 0, err
    assert json.loads(out)["after"] == {"champion": v1, "challenger": None, "previous-champion": None}
    rc, out, err = finish(status)  # read while the rollback ran: it sees a champion either way
    assert rc == 0, err
    assert json.loads(out)["aliases"]["champion"] in (v1, winner)

    again, history = registry_cli(psettings, "rollback"), registry_cli(psettings, "history", "--limit", "10")
    rc, out, _ = finish(again)  # nothing left to roll back to: a clear no-op
    assert rc == 0 and json.loads(out)["changed"] is False and "no previous-champion" in json.loads(out)["reason"]
    rc, out, _ = finish(history)
    rows = json.loads(out)
    assert [(e["action"], e["to_version"], e["actor"]) for e in rows] == [
        ("rollback", v1, "ci-user"), ("promote", winner, f"ops-{winner}"), ("promote", v1, "setup"),
    ]
    assert rows[0]["reason"] == "bad canary" and rows == json.loads(json.dumps(events(platform), default=str))

