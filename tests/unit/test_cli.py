"""The command line: every job runnable by hand, typed errors turned into one clear line."""

from __future__ import annotations

import json

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


def test_typed_errors_exit_2_with_a_clear_message(tmp_path):
    result = cli(tmp_path, "ingest", "--source", str(tmp_path / "nothing-here"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: object store folder") and "does not exist" in result.stderr
    (tmp_path / "empty").mkdir()
    empty = cli(tmp_path, "ingest", "--source", str(tmp_path / "empty"))
    assert empty.returncode == 2
    assert empty.stderr.startswith("error: no catalogue at") and "generate-catalogue" in empty.stderr
    missing = cli(tmp_path, "snapshots", "show", "snap-0000")
    assert missing.returncode == 2 and "no snapshot 'snap-0000'" in missing.stderr
