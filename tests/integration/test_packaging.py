"""`pip install .` gives a working `nohold` with every data file it needs at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_dialplan_templates_scenarios_and_migrations(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("nohold-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in [
        "dialplan/nohold.conf",
        "dialplan/nohold-routes.example.conf",
        "nohold/sandbox/templates/extensions.conf",
        "nohold/sandbox/templates/nohold-sandbox-routes.conf",
        "nohold/sandbox/scenarios/uac_info_dtmf.xml",
        "callbackdb/migrations/env.py",
        "callbackdb/migrations/versions/0001_notice_plays.py",
        "agi_scripts/fastagi.py",
        "ari_apps/ivr/flow.py",
        "nohold/ami/client.py",
        "nohold/decisions/queue_state.py",
    ]:
        assert needed in names, f"{needed} missing from {wheel.name}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "nohold = nohold.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_setup_py_still_works():
    result = subprocess.run([sys.executable, "setup.py", "--name", "--version"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["nohold", "0.1.0"]
