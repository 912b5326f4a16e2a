"""The command line: every job runnable by hand, typed errors turned into one clear line."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import cli


def test_generate_ingest_list_show(tmp_path):
    generated = cli(tmp_path, "generate-catalogue", "--rows", "60", "--images", "60", "--seed", "1")
    assert generated.returncode == 0, generated.stderr
    assert json.loads(generated.stdout)["rows"] == 60
    assert cli(tmp_path, "db", "init").returncode == 0
    ingested = cli(tmp_path, "ingest")
    assert ingested.returncode == 0, ingested.stderr
    summary = json.loads(ingested.stdout)
    assert summary["n_input"] == 60 == summary["n_accepted"] + summary["n_quarantined"]
    listed = json.loads(cli(tmp_path, "snapshots", "list").stdout)
    assert [s["snapshot_id"] for s in listed] == [summary["snapshot_id"]]
    shown = json.loads(cli(tmp_path, "snapshots", "show", summary["snapshot_id"]).stdout)
    assert shown["n_input"] == 60 and sum(shown["class_counts"].values()) == summary["n_accepted"]


def _one_error_line(result) -> str:
    """What the operator reads: one line (a usage error adds click's usage hint), no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_runtime_errors_exit_1_with_a_clear_message(tmp_path):
    result = cli(tmp_path, "ingest", "--source", str(tmp_path / "nothing-here"))
    assert result.returncode == 1
    assert _one_error_line(result).startswith("error: object store folder") and "does not exist" in result.stderr
    (tmp_path / "empty").mkdir()
    empty = cli(tmp_path, "ingest", "--source", str(tmp_path / "empty"))
    assert empty.returncode == 1
    assert empty.stderr.startswith("error: no catalogue at") and "generate-catalogue" in empty.stderr
    missing = cli(tmp_path, "snapshots", "show", "snap-0000")
    assert missing.returncode == 1 and "no snapshot 'snap-0000'" in missing.stderr


def test_a_wrong_setting_is_one_line_naming_the_variable_and_exits_2(tmp_path):
    result = cli(tmp_path, "snapshots", "list", settings={"RAKUTEN_IMAGE_POLICY": "maybe"})
    assert result.returncode == 2
    line = _one_error_line(result).strip()
    assert "\n" not in line, line
    assert line.startswith("error: invalid setting: RAKUTEN_IMAGE_POLICY (it is 'maybe'): Input should be 'require' or 'optional'")
    assert "docs/settings.md" in line


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("drift", "check", "--date", "2024-13-45"), "'2024-13-45' does not match the formats '%Y-%m-%d'"),
        (("train", "--vision-profile", "huge"), "'huge' is not one of 'full', 'tiny'"),
        (("train", "--modalities", "audio"), "'audio' is not one of"),
        (("registry", "history", "--limit", "0"), "Invalid value for '--limit': Input should be greater than or equal to 1"),
    ],
)
def test_a_wrong_option_is_a_usage_error_not_a_traceback(tmp_path, args, says):
    result = cli(tmp_path, *args)
    assert result.returncode == 2
    last = _one_error_line(result).strip().splitlines()[-1]  # after click's usage line and --help hint
    assert last.startswith("Error: ") and says in last, result.stderr


def test_score_checks_the_snapshot_before_asking_the_registry_for_a_model(tmp_path):
    result = cli(tmp_path, "score", "--snapshot-id", "snap-0000")  # no model is registered either
    assert result.returncode == 1
    assert "no snapshot 'snap-0000'" in _one_error_line(result) and "no registered version" not in result.stderr


def test_every_option_and_argument_has_help():
    import typer.main

    from rakuten_ml.cli import app

    def commands(group, path=()):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from commands(command, (*path, name))
            else:
                yield (*path, name), command

    missing = [
        f"{' '.join(path)} {param.name}"
        for path, command in commands(typer.main.get_group(app))
        for param in command.params
        if not getattr(param, "help", None) and param.name != "help"
    ]
    assert missing == []
