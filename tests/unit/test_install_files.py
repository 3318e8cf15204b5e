"""`nohold install` / `uninstall` on a real directory: backups, idempotence, exact undo,
and an admin's later edit kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nohold.install.run import InstallFailed, InstallOptions, install, run_uninstall

TEMPLATES = Path(__file__).resolve().parents[2] / "nohold" / "sandbox" / "templates"


def make_tree(tmp: Path, layout: str = "stock") -> Path:
    etc = tmp / "etc"
    etc.mkdir()
    for overlay in ("stock", layout):
        for p in (TEMPLATES / overlay).glob("*.conf"):
            (etc / p.name).write_text(p.read_text().replace("@@HTTP_PORT@@", "18088")
                                      .replace("@@AMI_PORT@@", "15038")
                                      .replace("@@SIP_PORT@@", "5060"))
    return etc


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def options(tmp: Path, etc: Path, **kw) -> InstallOptions:
    base = dict(asterisk_etc=etc, config=tmp / "nh" / "nohold.toml",
                state_dir=tmp / "nh" / "install", dialplan="[nohold-inbound]\n",
                routes="[nohold-queues]\n", route_contexts=("nohold-queues", "nohold-people"),
                rx=["false"], yes=True)
    base.update(kw)
    return InstallOptions(**base)  # type: ignore[arg-type]


def test_install_twice_then_uninstall_restores_every_byte(tmp_path):
    etc = make_tree(tmp_path)
    (etc / "http.conf").write_bytes(b"[general]\r\nbindport=18088\r\n")  # CRLF survives
    before = snapshot(etc)
    out: list[str] = []
    assert install(options(tmp_path, etc), out.append, lambda q: False) == 0
    assert any("Asterisk not reached" in line for line in out)
    installed = snapshot(etc)
    assert installed != before
    out.clear()
    assert install(options(tmp_path, etc), out.append, lambda q: False) == 0
    assert "nothing to change: nohold is installed and current" in out
    assert snapshot(etc) == installed
    assert run_uninstall(tmp_path / "nh" / "install", ["false"], out.append, True,
                         lambda q: False) == 0
    assert snapshot(etc) == before
    assert not (tmp_path / "nh" / "nohold.toml").exists()


def test_dry_run_and_a_no_write_nothing(tmp_path):
    etc = make_tree(tmp_path)
    before = snapshot(etc)
    out: list[str] = []
    assert install(options(tmp_path, etc, dry_run=True), out.append, lambda q: True) == 0
    assert install(options(tmp_path, etc, yes=False), out.append, lambda q: False) == 1
    assert snapshot(etc) == before and not (tmp_path / "nh").exists()
    assert "+[general](+)" in "\n".join(out)  # the diff was shown


def test_an_admin_edit_after_install_is_kept_by_uninstall(tmp_path):
    etc = make_tree(tmp_path)
    original = (etc / "manager.conf").read_text()
    install(options(tmp_path, etc), lambda s: None, lambda q: False)
    with open(etc / "manager.conf", "a") as f:
        f.write("[other]\nsecret = x\n")
    lines: list[str] = []
    run_uninstall(tmp_path / "nh" / "install", ["false"], lines.append, True, lambda q: False)
    assert (etc / "manager.conf").read_text() == original + "[other]\nsecret = x\n"
    assert any("only nohold's block was removed" in line for line in lines)


def test_uninstall_without_install_says_so(tmp_path):
    with pytest.raises(InstallFailed, match="nothing to undo"):
        run_uninstall(tmp_path / "none", ["false"], lambda s: None, True, lambda q: True)


def test_a_tree_that_is_not_asterisks_is_refused(tmp_path):
    etc = make_tree(tmp_path)
    shutil.move(etc / "manager.conf", tmp_path / "elsewhere.conf")
    with pytest.raises(InstallFailed, match="manager.conf is not in"):
        install(options(tmp_path, etc), lambda s: None, lambda q: True)


def test_systemd_unit_is_written_for_this_nohold_and_removed_by_uninstall(tmp_path):
    etc = make_tree(tmp_path)
    units = tmp_path / "units"
    out: list[str] = []
    opts = options(tmp_path, etc, systemd=True, user="root", unit_dir=units,
                   exe="/opt/nohold/bin/nohold")
    assert install(opts, out.append, lambda q: False) == 0
    unit = (units / "nohold.service").read_text()
    assert f"ExecStart=/opt/nohold/bin/nohold -c {tmp_path}/nh/nohold.toml run\n" in unit
    assert "User=root\n" in unit and "Restart=always\n" in unit
    watchdog = (units / "nohold-watchdog.service").read_text()
    assert f"ExecStart=/opt/nohold/bin/nohold -c {tmp_path}/nh/nohold.toml watchdog\n" \
        in watchdog and "Restart=always\n" in watchdog
    run_uninstall(tmp_path / "nh" / "install", ["false"], out.append, True, lambda q: False)
    assert not (units / "nohold.service").exists()
    assert not (units / "nohold-watchdog.service").exists()


def test_systemd_for_a_user_that_does_not_exist_says_how_to_create_it(tmp_path):
    etc = make_tree(tmp_path)
    opts = options(tmp_path, etc, systemd=True, user="nohold-no-such-user",
                   unit_dir=tmp_path / "units", exe="/opt/nohold/bin/nohold")
    with pytest.raises(InstallFailed, match="useradd --system"):
        install(opts, lambda s: None, lambda q: True)
