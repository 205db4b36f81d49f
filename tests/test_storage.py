"""Storage faults: a study whose output fills its filesystem stops with one error line, keeps
its finished runs, takes nothing half-written for done, and resumes once there is room.

The output lives on a small tmpfs mounted in a mount namespace of its own (``unshare -m``), so
the filesystem really fills; skipped where ``unshare`` is not permitted.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import TINY, read_json

SCRIPT = """
set -u
mount -t tmpfs -o size=1000k tmpfs "$D"
cd "$D"
"$PY" -m rl_transfer.cli run $ARGS --out exp --source-cache sources >/dev/null 2>"$V/err1"
echo $? > "$V/rc1"
cp -a exp "$V/exp1"
mount -o remount,size=64m "$D"
"$PY" -m rl_transfer.cli run $ARGS --out exp --source-cache sources >/dev/null 2>"$V/err2"
echo $? > "$V/rc2"
cp -a exp "$V/exp2"
"""


def test_a_full_disk_stops_the_study_in_one_line_and_loses_nothing(tmp_path, tiny_experiment):
    if shutil.which("unshare") is None:
        pytest.skip("no unshare command")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare is not permitted here: {probe.stderr.strip()}")
    small = tmp_path / "small"
    small.mkdir()
    env = {
        "D": str(small),
        "V": str(tmp_path),
        "PY": sys.executable,
        "ARGS": " ".join(TINY),
        "PATH": "/usr/bin:/bin",
        "PYTHONHASHSEED": "0",
    }
    subprocess.run(["unshare", "-m", "sh", "-c", SCRIPT], env=env, check=True, timeout=600)

    # 1. the full disk: one error line naming the path and the cure, no traceback
    err = (tmp_path / "err1").read_text()
    assert (tmp_path / "rc1").read_text().strip() == "8", err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "no space left on device while writing " + str(small) in errors[0]
    assert "run the same command again" in errors[0]
    # finished runs are kept, whole; nothing half-written is taken for done; nothing recorded
    # as failed for want of space
    first = tmp_path / "exp1"
    statuses = [read_json(p)["status"] for p in first.glob("*/*/*/seed_*/run.json")]
    assert statuses and set(statuses) == {"done"}
    assert len(statuses) < 6  # the disk filled before the study ended
    for run in first.glob("*/*/*/seed_*"):
        if (run / "run.json").exists():
            assert zipfile.ZipFile(run / "model.zip").testzip() is None
            assert len(np.load(run / "evaluations.npz")["timesteps"]) > 1

    # 2. with room, the same command finishes the study: the results of an uninterrupted one
    err = (tmp_path / "err2").read_text()
    assert (tmp_path / "rc2").read_text().strip() == "0", err
    results = read_json(tmp_path / "exp2" / "summary.json")["results"]
    assert results == read_json(tiny_experiment / "summary.json")["results"]
