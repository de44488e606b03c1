"""The control-socket protocol of bird (engines/bird/process.py `_reply`), from bytes BIRD 2.0.12 sent here."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pacslb.engines.bird import process

SHOW_PROTOCOLS = (
    b"2002-Name       Proto      Table      State  Since         Info\n"
    b"1002-device1    Device     ---        up     12:45:36.848  \n"
    b" uplink1    BGP        ---        start  12:45:36.848  Idle          \n"
    b"0000 \n"
)


def test_a_reply_ends_at_its_final_code_and_loses_the_codes() -> None:
    stream = io.BytesIO(SHOW_PROTOCOLS + b"0003 Reconfigured\n")
    code, text = process._reply(stream)
    assert code == 0 and text.splitlines()[1].startswith("device1") and "uplink1    BGP" in text
    assert process._reply(stream) == (3, "Reconfigured")  # the next reply is left for the next read


def test_an_error_code_and_a_cut_or_endless_reply() -> None:
    assert process._reply(io.BytesIO(b"9001 syntax error, unexpected CF_SYM_UNDEFINED\n"))[0] == 9001
    with pytest.raises(ValueError, match="closed the control socket"):
        process._reply(io.BytesIO(b"1002-device1 Device\n"))
    endless = io.BytesIO(b"1002-x\n" + b" y\n" * (process.MAX_REPLY_LINES + 1))
    with pytest.raises(ValueError, match="longer than"):
        process._reply(endless)


def test_bird_runs_with_only_two_capabilities_when_the_controller_may_drop_the_others() -> None:
    files = process.Files(Path("/var/lib/pacslb/bird"))
    bounded = process.command_line(files, "/usr/sbin/bird", drop=True)
    assert bounded[:4] == [process.SETPRIV, "--bounding-set=-all,+net_bind_service,+net_raw", "--inh-caps=-all", "--"]
    assert bounded[4:] == process.command_line(files, "/usr/sbin/bird", drop=False)
    assert "/var/lib/pacslb/bird/bird.conf" in bounded  # the marker a restarted controller adopts it by


def test_cap_setpcap_is_read_from_the_effective_set() -> None:
    assert process.can_drop_capabilities("Name:\tpython\nCapEff:\t000001ffffffffff\n")  # root
    assert not process.can_drop_capabilities("CapEff:\t0000000000003400\n")  # a unit without CAP_SETPCAP
    assert not process.can_drop_capabilities("")
