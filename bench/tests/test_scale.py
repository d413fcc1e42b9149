"""make bench-scale: what it asks of the machine, how it rotates and sums its rounds, and how it judges its targets."""

from datetime import UTC, datetime

import pytest

from bench import scale, scale_report, wrk
from bench.deployment import HAPROXY_CONFIG
from bench.scale_report import Measured, Stale

CORES = {"api": 0.3, "primary": 0.05, "replica": 0.1, "haproxy": 0.05, "wrk": 0.03, "machine": 0.5}


class Caps:
    version = 1
    share = 0.3


def test_as_a_normal_user_it_stops_with_one_line_naming_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)

    assert scale.main([]) == 2

    message = capsys.readouterr().err
    assert message.count("\n") == 1 and "sudo make bench-scale" in message


def test_the_topologies_come_in_another_order_each_round() -> None:
    firsts = [topology for rotation, topology in scale.rounds(3) if rotation in (0, 1, 2)][:: len(scale.TOPOLOGIES)]

    assert firsts == [(1, 0), (2, 1), (3, 2)]
    assert sorted(topology for _, topology in scale.rounds(2)) == sorted(scale.TOPOLOGIES * 2)


def measured(hosts: int, standbys: int, workload: str, rps: float, connections: int = 10) -> Measured:
    return Measured(hosts, standbys, workload, rps, 1.0, 5.0, 0, connections, CORES)


def test_each_figure_is_the_median_of_its_rounds_with_their_spread() -> None:
    rounds = [measured(1, 0, "get", rps) for rps in (900.0, 1_000.0, 1_300.0)]

    merged, spread = scale_report.medians(rounds)

    assert [m.rps for m in merged] == [1_000.0]
    assert spread[1, 0, "get"] == "900-1,300"


def test_the_targets_are_judged_on_the_medians() -> None:
    results = [
        *(measured(1, 0, workload, 1_000.0) for workload in scale_report.WORKLOADS),
        *(measured(2, 1, workload, 1_900.0) for workload in scale_report.WORKLOADS),
        measured(3, 2, "get", 2_600.0),
        measured(3, 2, "list_start", 2_400.0, connections=25),
        measured(3, 2, "create", 900.0),
    ]
    killed = wrk.WrkResult(requests=5_000, seconds=30.0, p50_ms=1.0, p99_ms=9.0, non2xx=0, socket_errors=0)
    args = {"connections": 64, "rows": 1_000, "warmup": 1.0, "seconds": 2.0, "stale_delay": "300ms"}

    text = "\n".join(
        scale_report.lines(datetime.now(UTC), args, Caps(), results, killed, Stale(0, 7, 1_000, 200), "x.png")  # type: ignore[arg-type]
    )

    assert "| get one at 2 hosts + 1 standby(s) ≥ 1.8x 1 host | 1.90x | met |" in text
    assert "| list (100) at 3 hosts + 2 standby(s) ≥ 2.5x 1 host | 2.40x | **missed** |" in text
    assert "PgBouncer's pool (20) however many hosts | at most 25 | **missed** |" in text
    assert "| 0 stale reads among 1,000 write-then-read pairs with the token | 0 | met |" in text
    assert "- list (100) at 3 hosts + 2 standby(s): api 0.30 of 0.30;" not in text, "3 hosts' cap is 0.90"
    assert (
        "- list (100) at 3 hosts + 2 standby(s): no host at its cap (machine 0.50 cores busy); at 1 host: api" in text
    )


def test_haproxy_checks_every_host_on_ready_and_sends_to_the_least_busy() -> None:
    config = HAPROXY_CONFIG.format(port=8080, servers="    server host1 127.0.0.1:9001 check")

    assert "balance leastconn" in config and "option httpchk GET /ready" in config
    assert "bind 127.0.0.1:8080" in config
