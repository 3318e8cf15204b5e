"""What `nohold install` adds to an Asterisk config tree (pure: texts in, texts out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nohold.decisions.install import (
    BEGIN,
    END,
    InstallError,
    InstallRequest,
    categories,
    general,
    is_freepbx,
    plan_install,
    reload_commands,
    routes_conf,
    session_limit_from_lines,
    session_limit_problem,
    systemd_unit,
    with_block,
    without_block,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "nohold" / "sandbox" / "templates"


def tree(layout: str) -> dict[str, str]:
    files: dict[str, str] = {}
    for overlay in ("stock", layout):
        for p in (TEMPLATES / overlay).glob("*.conf"):
            files[p.name] = (p.read_text().replace("@@HTTP_PORT@@", "18088")
                             .replace("@@AMI_PORT@@", "15038").replace("@@SIP_PORT@@", "5060"))
    return files


def request(**kw) -> InstallRequest:
    base = dict(dialplan="[nohold-inbound]\n", routes="[nohold-queues]\n",
                new_ari_password="ARIPW", new_ami_secret="AMISECRET")
    base.update(kw)
    return InstallRequest(**base)  # type: ignore[arg-type]


def applied(files: dict[str, str], plan) -> dict[str, str]:
    out = dict(files)
    for c in plan.changes:
        out[c.name] = c.after
    return out


def test_stock_tree_gets_marked_blocks_and_new_files():
    files = tree("stock")
    plan = plan_install(files, request())
    assert plan.layout == "asterisk"
    names = {c.name for c in plan.changes}
    assert names == {"extensions.conf", "http.conf", "ari.conf", "manager.conf", "nohold.conf",
                     "nohold-routes.conf"}
    http = next(c for c in plan.changes if c.name == "http.conf")
    assert http.after.startswith(files["http.conf"])  # appended, nothing else touched
    assert f"{BEGIN}\n[general](+)\nenabled = yes\n{END}\n" in http.after
    ext = next(c for c in plan.changes if c.name == "extensions.conf")
    assert '#include "nohold.conf"\n#include "nohold-routes.conf"\n' in ext.after
    assert (plan.ari_url, plan.ami_port) == ("http://127.0.0.1:18088", 15038)
    assert plan.ari_password == "ARIPW" and plan.ami_secret == "AMISECRET"
    assert plan.reloads == ("module reload http", "module reload res_ari.so",
                            "manager reload", "dialplan reload")


def test_a_second_run_changes_nothing_and_keeps_the_secrets():
    files = tree("stock")
    first = plan_install(files, request())
    second = plan_install(applied(files, first), request(new_ari_password="OTHER",
                                                         new_ami_secret="OTHER2"))
    assert second.changes == ()
    assert (second.ari_password, second.ami_secret) == ("ARIPW", "AMISECRET")


def test_an_older_block_is_replaced_not_duplicated():
    files = applied(tree("stock"), plan_install(tree("stock"), request()))
    files["manager.conf"] = files["manager.conf"].replace("read = system,agent,config",
                                                          "read = system")
    plan = plan_install(files, request())
    [change] = plan.changes
    assert change.name == "manager.conf" and change.after.count(BEGIN) == 1
    assert "read = system,agent,config" in change.after


def test_removing_the_block_gives_back_the_original_bytes():
    text = "[general]\nenabled = yes\n"
    assert without_block(with_block(text, "[x]\na = 1\n", "f.conf"), "f.conf") == text


def test_a_half_block_is_refused_naming_the_file():
    with pytest.raises(InstallError, match="manager.conf: `; nohold:begin` without"):
        with_block(f"{BEGIN}\n[x]\n", "y\n", "manager.conf")


def test_a_user_of_the_same_name_that_nohold_did_not_write_is_refused():
    files = tree("stock")
    files["manager.conf"] += "\n[nohold]\nsecret = mine\n"
    with pytest.raises(InstallError, match=r"manager.conf line \d+: a \[nohold\] user exists"):
        plan_install(files, request())


def test_disabled_http_without_bindaddr_gets_loopback():
    files = tree("stock")
    files["http.conf"] = ";enabled=yes\n"
    plan = plan_install(files, request())
    http = next(c for c in plan.changes if c.name == "http.conf")
    assert "[general]\nenabled = yes\nbindaddr = 127.0.0.1\n" in http.after
    assert plan.ari_url == "http://127.0.0.1:8088"


def test_admin_routes_are_left_alone():
    files = tree("stock")
    files["extensions.conf"] += "\n[nohold-queues]\nexten => tech,1,Queue(tech)\n"
    plan = plan_install(files, request())
    assert "nohold-routes.conf" not in {c.name for c in plan.changes}
    assert any("routes: yours, in [nohold-queues] (extensions.conf line" in n
               for n in plan.notes)


def test_freepbx_is_detected_and_only_custom_files_are_written():
    files = tree("freepbx")
    assert is_freepbx(files) and not is_freepbx(tree("stock"))
    plan = plan_install(files, request())
    assert plan.layout == "freepbx"
    assert {c.name for c in plan.changes} == {
        "extensions_custom.conf", "ari_additional_custom.conf", "manager_custom.conf",
        "nohold.conf", "nohold-routes.conf"}
    # Read through FreePBX's includes: its HTTP server, its AMI port.
    assert (plan.ari_url, plan.ami_port) == ("http://127.0.0.1:18088", 15038)


def test_freepbx_without_the_custom_include_is_refused():
    files = tree("freepbx")
    files["manager.conf"] = files["manager.conf"].replace("#include manager_custom.conf\n", "")
    with pytest.raises(InstallError, match="manager.conf does not #include manager_custom"):
        plan_install(files, request())


def test_includes_and_additive_stanzas_are_read_as_asterisk_reads_them():
    files = {"a.conf": "[general]\nx = 1\n#include b.conf\n[general](+)\nx = 3\n",
             "b.conf": "y = 2 ; comment\n"}
    g = general(categories(files, "a.conf"))
    assert g is not None and (g.get("x"), g.get("y")) == ("3", "2")


def test_routes_file_never_ends_in_silence():
    text = routes_conf(["tech"], ["operator", "anna"], "PJSIP/100")
    assert "exten => tech,1,Queue(tech,t,,,600)\n same => n,Goto(nohold-people,operator,1)" in text
    assert "exten => operator,1,Dial(PJSIP/100,30)\n same => n,Playback(" in text
    assert "exten => anna,1,Dial(PJSIP/anna,30)\n same => n,Goto(nohold-people,operator,1)" in text


def test_systemd_unit_for_a_virtualenv():
    unit = systemd_unit("/opt/nohold/.venv/bin/nohold", "/etc/nohold/nohold.toml", "nohold")
    assert "ExecStart=/opt/nohold/.venv/bin/nohold -c /etc/nohold/nohold.toml run\n" in unit
    for line in ("User=nohold", "Restart=always", "StateDirectory=nohold",
                 "ReadWritePaths=/var/lib/nohold"):
        assert line + "\n" in unit
    with pytest.raises(InstallError):
        systemd_unit("nohold", "/etc/nohold/nohold.toml", "nohold")


@pytest.mark.parametrize(("lines", "limit", "ok"), [
    ((), 100, True), (("sessionlimit = 15",), 15, False), (("sessionlimit=22",), 22, True)])
def test_session_limit(lines, limit, ok):
    assert session_limit_from_lines(lines) == limit
    assert (session_limit_problem(limit, 12) is None) == ok


def test_reload_commands_follow_the_files():
    assert reload_commands(["manager_custom.conf"]) == ("manager reload",)
    assert reload_commands(["nohold.conf", "extensions.conf"]) == ("dialplan reload",)
