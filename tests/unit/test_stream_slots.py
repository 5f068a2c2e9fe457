"""Stream caps: per RPC, per caller, and of every capped RPC of a process together."""

from __future__ import annotations

from aiaudit.common.stream_slots import CEILING, ProcessStreams, StreamSlots


def test_the_rpcs_of_a_process_share_its_ceiling() -> None:
    """Two RPCs each allowed up to the ceiling alone still leave threads for the rest."""
    process = ProcessStreams()
    appends = StreamSlots("AppendStream", CEILING, CEILING, process)
    watches = StreamSlots("WatchAlerts", CEILING, CEILING, process)
    assert all(appends.take(f"gateway-{i}") == "" for i in range(CEILING - 10))
    assert all(watches.take(f"analyst-{i}") == "" for i in range(10))
    refused = "48 streams of this server's RPCs are open, the most its threads allow"
    assert appends.take("gateway-x") == refused and watches.take("analyst-x") == refused
    watches.give_back("analyst-0")
    assert appends.take("gateway-x") == ""
    assert process.open == CEILING


def test_each_rpc_keeps_its_own_limits() -> None:
    process = ProcessStreams()
    appends = StreamSlots("AppendStream", 3, 2, process)
    assert appends.take("gw") == "" and appends.take("gw") == ""
    assert appends.take("gw") == "caller 'gw' has 2 AppendStream streams open"
    assert appends.take("other") == ""
    assert appends.take("third") == "3 AppendStream streams are open on this server, its limit"
    for who in ("gw", "gw", "other"):
        appends.give_back(who)
    assert process.open == 0 and appends.take("third") == ""
