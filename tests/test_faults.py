"""Faults tried for real: a pipeline run killed mid-stage, an unwritable output folder, a full disk."""

import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pipeline.engine.stored_rows import load_array
from helpers import cli, record


def embeddings(out):
    found = [p for p in out.glob("cache/extract/*/embeddings.rows.json") if ".tmp-" not in str(p)]
    assert len(found) == 1
    return load_array(found[0])


@pytest.mark.full
def test_a_run_killed_during_extraction_is_redone_the_same(tmp_path, small_set):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    args = ["run", "--images", str(small_set), "--only", "extract", "--set", "extract.batch_size=4"]
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args, "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 120
    while not list(killed.glob("cache/extract/.tmp-*")):
        assert proc.poll() is None and time.time() < deadline, "extraction never started"
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the stage
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(killed.glob("cache/extract/*/meta.json")), "nothing finished, nothing to trust"

    for out in (killed, clean):
        result = cli(*args, "--out", str(out))
        assert result.exit_code == 0, result.output
    rec = record(killed)
    assert rec["stages"]["extract"]["state"] == "ran"
    assert np.array_equal(embeddings(killed), embeddings(clean))
    assert not list(killed.glob("cache/*/.tmp-*"))


def test_an_unwritable_output_folder_is_a_one_line_error(tmp_path, small_set):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    result = cli("run", "--images", str(small_set), "--out", str(blocker / "out"))
    assert result.exit_code == 2
    assert "not writable" in result.output and "Traceback" not in result.output


@pytest.mark.full
def test_a_full_disk_is_a_one_line_error_and_keeps_finished_stages(tmp_path, small_set, monkeypatch):
    out = tmp_path / "out"
    ok = cli("run", "--images", str(small_set), "--out", str(out), "--only", "ingest")
    assert ok.exit_code == 0, ok.output
    kept = sorted(p.read_bytes() for p in out.glob("cache/ingest/*/*"))

    from pipeline.engine import cache

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cache, "write_json", full)
    result = cli("run", "--images", str(small_set), "--out", str(out), "--only", "extract")
    assert result.exit_code == 2 and "No space left on device" in result.output
    assert sorted(p.read_bytes() for p in out.glob("cache/ingest/*/*")) == kept, "finished stages untouched"
    assert not list(out.glob("cache/extract/*/meta.json")) and not list(out.glob("cache/*/.tmp-*"))
