"""`nohold check` over AMI against the real sandbox Asterisk: login, read classes, dialplan."""

from __future__ import annotations

import pytest

from nohold.ami.check import check_ami
from nohold.ami.settings import AmiSettings
from nohold.sandbox import Sandbox
from nohold.sandbox.instance import free_port

pytestmark = pytest.mark.e2e

# Extra manager.conf users, each missing something nohold needs.
USERS = {
    "nh_noagent": ("system", "reporting,command"),
    "nh_nosystem": ("agent", "reporting,command"),
    "nh_minimal": ("system,agent", "reporting"),
    "nh_nodialplan": ("system,agent", ""),
}


@pytest.fixture(scope="module")
def users(asterisk: Sandbox) -> Sandbox:
    conf = asterisk.run_dir / "etc" / "manager.conf"
    text = conf.read_text()
    for user, (read, write) in USERS.items():
        if f"[{user}]" not in text:
            text += (f"\n[{user}]\nsecret = pw-{user}\npermit = 127.0.0.1/255.255.255.255\n"
                     f"read = {read}\nwrite = {write}\n")
    conf.write_text(text)
    asterisk.cli("manager reload")
    return asterisk


def settings_for(box: Sandbox, user: str | None = None, **kw) -> AmiSettings:
    if user is None:
        return AmiSettings(enabled=True, port=box.ami_port, user=box.ami_user,
                           secret=box.ami_password, **kw)
    return AmiSettings(enabled=True, port=box.ami_port, user=user, secret=f"pw-{user}", **kw)


async def test_a_well_configured_user_passes_and_says_what_it_verified(asterisk):
    report = await check_ami(settings_for(asterisk))
    assert report.ok, report.problems
    text = "\n".join(report.notes)
    assert "read permissions include system,agent" in text
    assert "[nohold-inbound] loaded" in text and "[nohold-ivr] loaded" in text
    assert "app_queue answers" in text


async def test_a_wrong_secret_says_to_check_manager_conf(asterisk):
    s = AmiSettings(enabled=True, port=asterisk.ami_port, user=asterisk.ami_user, secret="wrong")
    report = await check_ami(s)
    assert len(report.problems) == 1
    assert "refused the login of user 'nohold'" in report.problems[0]
    assert "manager.conf has a [nohold] section" in report.problems[0]
    assert "NOHOLD_AMI_SECRET" in report.problems[0]


async def test_nothing_listening_says_where_it_tried():
    s = AmiSettings(enabled=True, port=free_port(), secret="x", connect_timeout=2)
    report = await check_ami(s)
    assert len(report.problems) == 1
    assert f"127.0.0.1:{s.port}" in report.problems[0] and "enabled = yes" in report.problems[0]


async def test_missing_read_agent_is_an_error_naming_the_fix(users):
    report = await check_ami(settings_for(users, "nh_noagent"))
    assert len(report.problems) == 1, report.problems
    problem = report.problems[0]
    assert "[nh_noagent] lacks read=agent" in problem
    assert "it has read = system" in problem and "set read = system,agent" in problem


async def test_missing_read_system_shows_as_no_fullybooted(users):
    report = await check_ami(settings_for(users, "nh_nosystem"))
    joined = "\n".join(report.problems)
    assert "no FullyBooted event" in joined
    assert "[nh_nosystem] lacks read=system" in joined


async def test_least_privilege_user_passes_but_says_read_agent_was_not_verified(users):
    report = await check_ami(settings_for(users, "nh_minimal"))
    assert report.ok, report.problems
    assert any("read=agent not verified" in n and "write=command" in n for n in report.notes)


async def test_no_write_reporting_means_the_dialplan_cannot_be_checked(users):
    report = await check_ami(settings_for(users, "nh_nodialplan"))
    assert report.problems and all("add write = reporting" in p for p in report.problems)
    assert len(report.problems) == 2  # one per context


async def test_a_missing_context_says_what_to_add_to_extensions_conf(asterisk):
    report = await check_ami(settings_for(asterisk),
                             contexts=("nohold-inbound", "nohold-not-loaded"))
    assert len(report.problems) == 1, report.problems
    problem = report.problems[0]
    assert "context [nohold-not-loaded] is not loaded" in problem
    assert "`#include nohold.conf` to extensions.conf" in problem
    assert "dialplan/nohold.conf" in problem and "dialplan reload" in problem


async def test_disabled_ami_is_not_checked():
    report = await check_ami(AmiSettings(enabled=False))
    assert report.ok and "disabled" in report.notes[0]
