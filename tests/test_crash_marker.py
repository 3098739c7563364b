"""The crash marker (core/plugins/crash_marker.py): what a dead process was running is
read back by the next one; a live process's marker is left alone; an idle one is
tidied without a report. Real processes, ended with os._exit."""

from __future__ import annotations

import subprocess
import sys

from core.plugins.crash_marker import CrashMarker, collect_crashes

CHILD = """
import os, sys
from pathlib import Path
from core.plugins.crash_marker import CrashMarker
marker = CrashMarker(Path(sys.argv[1]))
marker.running("killer", "before_sample", "job-1")
marker.idle()
marker.running("killer", sys.argv[2], "job-2")
if sys.argv[2] == "idle":
    marker.idle()
os._exit(3)  # no clean-up runs
"""


def run_child(folder, hook):
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder), hook], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr


def test_a_dead_processs_marker_names_what_it_ran(tmp_path):
    run_child(tmp_path, "image_saved")
    live = CrashMarker(tmp_path)
    live.running("other", "on_step", "job-3")  # this process: alive, never collected
    assert collect_crashes(tmp_path) == [{"extension": "killer", "hook": "image_saved", "job_id": "job-2"}]
    assert collect_crashes(tmp_path) == []  # reported once
    assert [p.name for p in tmp_path.iterdir()] == [live.path.name]
    live.close()
    assert not live.path.exists()


def test_an_idle_dead_marker_is_removed_without_a_report(tmp_path):
    run_child(tmp_path, "idle")
    assert collect_crashes(tmp_path) == [] and list(tmp_path.iterdir()) == []
