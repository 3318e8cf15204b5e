"""`pip install .` gives a working `nohold` with every data file it needs at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_dialplan_templates_scenarios_and_migrations(tmp_path):
    # Built from a copy without a checkout's leftovers: setuptools adds whatever an
    # old build/ holds (top-level packages of before decision 0016) to the wheel.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", ".venv", ".*_cache", "node_modules", ".git"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
         str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("nohold-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in [
        "nohold/dialplan/nohold.conf",
        "nohold/dialplan/nohold-routes.example.conf",
        "nohold/sandbox/templates/extensions.conf",
        "nohold/sandbox/templates/nohold-sandbox-routes.conf",
        "nohold/sandbox/scenarios/uac_info_dtmf.xml",
        "nohold/callbackdb/migrations/env.py",
        "nohold/callbackdb/migrations/versions/0001_notice_plays.py",
        "nohold/agi_scripts/fastagi.py",
        "nohold/ari_apps/ivr/flow.py",
        "nohold/ari_apps/afterhours/partner.py",
        "nohold/sms/smpp.py",
        "nohold/install/run.py",
        "nohold/ami/client.py",
        "nohold/decisions/queue_state.py",
    ]:
        assert needed in names, f"{needed} missing from {wheel.name}"
    # Nothing but nohold at the top of site-packages (a generic `dialplan` or `setup`
    # would clash with other packages), and every package of the tree is in the wheel.
    tops = {n.split("/", 1)[0] for n in names if not n.startswith("nohold-")}
    assert tops == {"nohold"}, tops
    shipped = {str(Path(n).parent) for n in names if n.endswith("/__init__.py")}
    in_tree = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "nohold").rglob("__init__.py")}
    assert in_tree <= shipped, sorted(in_tree - shipped)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "nohold = nohold.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_setup_py_still_works():
    result = subprocess.run([sys.executable, "setup.py", "--name", "--version"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["nohold", "0.1.0"]
