"""`nohold install` into an admin's Asterisk that has never seen nohold (the sandbox
started on a stock config tree, and on a FreePBX-shaped one): install, check, a real
SIP call that hears the notice once and reaches a queue, uninstall, and the tree
byte for byte as it was."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from nohold.ari_apps.ari_client import CONNECTED_EVENT
from nohold.config import PromptSettings
from nohold.decisions.install import is_freepbx_generated
from nohold.prompts import build_prompts
from nohold.sandbox import Sandbox, start_sandbox
from nohold.sandbox.instance import free_port
from nohold.sandbox.nohold_config import to_toml
from nohold.sandbox.sipp import arun_sipp_call
from tests.support.events import Events, client_for
from tests.support.nohold_process import NoholdProcess

pytestmark = pytest.mark.e2e


def snapshot(etc: Path) -> dict[str, bytes]:
    return {p.relative_to(etc).as_posix(): p.read_bytes()
            for p in sorted(etc.rglob("*")) if p.is_file()}


def nohold(config: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOHOLD_")}
    return subprocess.run([sys.executable, "-m", "nohold.cli", "-c", str(config), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(params=["stock", "freepbx"])
def admin_box(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    box = start_sandbox(f"install-{request.param}-{os.getpid()}", layout=request.param)
    try:
        yield box
    finally:
        box.stop()


async def test_install_check_call_uninstall(admin_box: Sandbox, tmp_path: Path) -> None:
    box = admin_box
    etc = box.etc_dir
    before = snapshot(etc)
    freepbx = "extensions_additional.conf" in before
    # The admin's own nohold.toml (database, prompts); install adds how to reach Asterisk.
    config = tmp_path / "nohold" / "nohold.toml"
    config.parent.mkdir()
    config.write_text(to_toml({
        "logging": {"level": "debug"},
        "agi": {"port": free_port()},
        "database": {"url": f"sqlite:///{tmp_path}/nohold.db"},
        "prompts": {"dir": str(box.prompts_dir), "asterisk_dir": box.in_asterisk(box.prompts_dir)},
    }))
    built = build_prompts(PromptSettings(dir=box.prompts_dir))
    notice = next(p.seconds for p in built if p.name == "notice")
    rx = " ".join(box.asterisk_rx())

    result = nohold(config, "install", "--asterisk-etc", str(etc), "--yes", "--asterisk-rx", rx)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reloaded: `dialplan reload`" in result.stdout, result.stdout
    assert "<generated secret>" in result.stdout  # the diff never shows a secret
    after = snapshot(etc)
    changed = {n for n in after if before.get(n) != after[n]}
    if freepbx:
        # Only the files FreePBX leaves to admins, and nohold's own.
        assert changed == {"extensions_custom.conf", "ari_additional_custom.conf",
                           "manager_custom.conf", "nohold.conf", "nohold-routes.conf"}, changed
        assert not any(is_freepbx_generated(after[n].decode()) for n in changed)
    else:
        assert changed == {"extensions.conf", "http.conf", "ari.conf", "manager.conf",
                           "nohold.conf", "nohold-routes.conf"}, changed

    # Idempotent: a second run changes nothing.
    again = nohold(config, "install", "--asterisk-etc", str(etc), "--yes", "--asterisk-rx", rx)
    assert again.returncode == 0 and "nothing to change" in again.stdout, again.stdout
    assert snapshot(etc) == after

    # The sandbox now speaks with nohold's generated users.
    conf = tomllib.loads((config.parent / "conf.d" / "asterisk.toml").read_text())
    box.ari_user, box.ari_password = conf["ari"]["user"], conf["ari"]["password"]
    box.ami_user, box.ami_password = conf["ami"]["user"], conf["ami"]["secret"]
    assert conf["ari"]["url"] == box.ari_url and conf["ami"]["port"] == box.ami_port

    assert nohold(config, "db", "upgrade").returncode == 0
    checked = nohold(config, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for words in ("[nohold-inbound] loaded", "modules: loaded", "routes: 3 in the dialplan",
                  "2 queues in app_queue", "http: sessionlimit 100", "prompts: Asterisk played"):
        assert words in checked.stdout, checked.stdout

    # A route to a queue Asterisk lacks: check names it and says what to add.
    extra = config.parent / "conf.d" / "zz-missing-queue.toml"
    extra.write_text('[ivr]\nfallback = "queue:sales"\n')
    missing = nohold(config, "check")
    extra.unlink()
    assert missing.returncode != 0
    for words in ("queue 'sales' does not exist in app_queue", "add to queues.conf `[sales]`",
                  "routes: queue:sales goes to nohold-queues,sales,1, which is not in the "
                  "dialplan: add to [nohold-queues] in your routes file: "
                  "`exten => sales,1,Queue(sales,t,,,600)`"):
        assert words in missing.stderr, missing.stderr

    proc = NoholdProcess(config=config, log_path=tmp_path / "nohold.log")
    events = Events(client_for(box, "install-events"))
    try:
        await events.find(lambda e: e["type"] == CONNECTED_EVENT)
        proc.start()
        await proc.wait_ready(box)
        # The DID 100 as the admin routed it (from-pstn, or FreePBX's inbound route);
        # 1 after the notice, while the menu plays: the tech queue.
        call = await arun_sipp_call(box, "100", digits="1", settle_seconds=notice + 1.0,
                                    hold_seconds=8)
        assert call.returncode == 0, call.stderr
        await events.find(lambda e: e["type"] == "ChannelUserevent"
                          and e["eventname"] == "NoholdAgentAnswered", timeout=20)
        sip = {e["channel"]["id"] for e in events.seen
               if e.get("channel", {}).get("name", "").startswith("PJSIP/sipp-")}
        heard = [e["playback"]["media_uri"].rsplit("/", 1)[-1] for e in events.seen
                 if e["type"] == "PlaybackStarted"
                 and e["playback"]["target_uri"].removeprefix("channel:") in sip]
        assert heard.count("notice") == 1 and heard[0] == "notice", heard
        assert "route=queue:tech to=nohold-queues,tech,1" in proc.log()
    finally:
        await events.close()
        proc.stop()
    assert proc.problems() == []

    undone = nohold(config, "uninstall", "--yes", "--asterisk-rx", rx)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert snapshot(etc) == before, "the tree differs from the one before install"
    assert not (config.parent / "conf.d").exists()
    assert not (config.parent / "install").exists()
