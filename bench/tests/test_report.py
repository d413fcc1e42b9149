"""The results file: figures are medians of valid runs, ratios meet or miss their targets, the chart is drawn."""

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from bench import report, wrk
from bench.tests.test_tools import FAKE_WRK


def test_wrk_results_are_read_with_every_error_counted() -> None:
    line = (
        'BENCH_RESULT {"requests":5000,"duration_us":2000000,"non2xx":3,"connect":1,"read":0,"write":0,'
        '"timeout":2,"p50_us":4000,"p99_us":9000,"max_us":12000}'
    )

    result = wrk.parse("Running 2s test\n" + line + "\n")

    assert (result.requests, result.seconds, result.p50_ms, result.p99_ms) == (5000, 2.0, 4.0, 9.0)
    assert (result.non2xx, result.socket_errors, result.errors) == (3, 3, 6)


def run(round_number: int, system: str, workload: str, rps: float, errors: int = 0, cpu: float = 100.0) -> report.Run:
    return report.Run(
        round=round_number,
        system=system,
        workload=workload,
        rps=rps,
        p50_ms=10.0,
        p99_ms=20.0,
        errors=errors,
        api_cpu_us=cpu,
        pg_cpu_us=50.0,
        api_rss_mib=60.0,
    )


def fake_runs() -> list[report.Run]:
    runs = []
    for workload in report.WORKLOADS:
        runs += [run(r, "users-api", workload, rps) for r, rps in ((1, 6000.0), (2, 7000.0), (3, 6500.0))]
        runs += [run(r, "orm", workload, 1000.0) for r in (1, 2, 3)]
        runs += [run(r, "raw-minimal", workload, 8000.0, cpu=80.0) for r in (1, 2, 3)]
        runs += [run(r, "users-api-2w", workload, 7800.0) for r in (1, 2, 3)]
        runs += [run(r, "users-api-unobserved", workload, 6700.0, cpu=95.0) for r in (1, 2, 3)]
        runs += [run(r, "users-api-auth", workload, 6200.0, cpu=105.0) for r in (1, 2, 3)]
        runs += [run(r, "http-ceiling", workload, 10000.0) for r in (1, 2, 3)]
        runs += [run(r, "users-api-uncoalesced", workload, 4000.0, cpu=125.0) for r in (1, 2, 3)]
        runs += [run(r, "users-api-gc-default", workload, 5200.0, cpu=120.0) for r in (1, 2, 3)]
    runs.append(run(4, "users-api", "get", 1.0, errors=5))  # invalid: must not count
    return runs


def test_ratios_use_medians_of_valid_runs_only() -> None:
    found = {what: (value, met) for what, value, _, met in report.ratios(fake_runs())}

    assert found["users-api / ORM, get"] == (6.5, True)
    assert found["users-api / ORM, list_start"] == (6.5, False)
    assert found["users-api / HTTP ceiling, get"] == (0.65, False)  # at least 0.8, with reads coalesced
    assert found["users-api p99 / p50, get"] == (2.0, True)
    assert found["users-api req/s / users-api-uncoalesced's, get"] == (1.625, True)
    assert found["users-api req/s / raw-minimal's, get"] == (0.8125, False)
    assert found["users-api API CPU / raw-minimal's, get"] == (1.25, False)  # at most 0.8, with reads coalesced
    assert found["users-api p50 / users-api-uncoalesced's, get_alone"] == (1.0, True)
    assert found["users-api req/s / users-api-uncoalesced's, lookup"] == (1.625, None)  # reported, no target
    assert found["users-api req/s / users-api-uncoalesced's, create"] == (1.625, True)
    assert found["users-api API CPU / raw-minimal's, mix"] == (1.25, None), "no target on the mix"
    assert found["users-api WORKERS=2 / WORKERS=1 req/s, get"] == (1.2, None)
    assert found["users-api req/s / users-api-unobserved's, get"] == (6500 / 6700, True)
    assert found["users-api API CPU / users-api-unobserved's, get"] == (100 / 95, None)
    assert found["users-api-auth API CPU / users-api's, get"] == (1.05, True)
    assert found["users-api-auth API CPU / users-api's, create"] == (1.05, None), "a target on get-one alone"
    assert found["users-api-auth req/s / users-api's, get"] == (6200 / 6500, None)
    assert found["users-api req/s / users-api-gc-default's, get"] == (1.25, None)


def write_report(path: Path, runs: Sequence[report.Run] = (), **subset: object) -> str:
    markdown, chart = report.write(
        path,
        [*fake_runs(), *runs],
        config={
            "quick": True,
            "rounds": 3,
            "warmup": 3,
            "seconds": 10,
            "connections": 64,
            "workers": 1,
            "db_connections": 10,
            "rows": 1000,
            "systems": tuple(report.SYSTEMS),
            "workloads": tuple(report.WORKLOADS),
        }
        | subset,
        seed_rate=123456.0,
        commands={"load": "wrk ..."},
        pg_settings=[("fsync", "on", None), ("shared_buffers", "16384", "8kB")],
        started=datetime(2026, 1, 1),
        embedded=True,
    )
    assert chart.stat().st_size > 0
    return markdown.read_text()


def test_the_results_file_and_chart_are_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wrk").write_text(FAKE_WRK)
    (tmp_path / "wrk").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    text = write_report(tmp_path / "run.md")

    assert "| users-api / ORM, get | 6.50 | >= 5x | yes |" in text
    assert "round 4 get users-api: 5 non-2xx or socket errors" in text
    assert "| shared_buffers | 16384 8kB |" in text
    assert "wrk: wrk 4.2.0 [epoll] Copyright (C) 2012 Will Glozer" in text


def test_a_partial_run_names_its_subset_rather_than_the_whole_target(tmp_path: Path) -> None:
    whole = write_report(tmp_path / "whole.md")
    part = write_report(tmp_path / "part.md", systems=("users-api", "users-api-auth"), workloads=("get",))

    assert "Produced by `make bench-quick` (`python -m bench.run`) at " in whole
    assert (
        "Produced by `python -m bench.run --quick --systems users-api,users-api-auth --workloads get` "
        "(a part of `make bench-quick`) at "
    ) in part


def test_users_api_at_an_earlier_commit_is_measured_beside_it(tmp_path: Path) -> None:
    earlier = [run(r, "users-api@ca94118", "get", 5000.0, cpu=125.0) for r in (1, 2, 3)]
    found = {what: value for what, value, _, _ in report.ratios([*fake_runs(), *earlier])}
    text = write_report(tmp_path / "run.md", runs=earlier, against="ca94118", systems=("users-api", "http-ceiling"))

    assert found["users-api req/s / users-api@ca94118's, get"] == 1.3
    assert found["users-api API CPU / users-api@ca94118's, get"] == 0.8
    assert "users-api req/s / users-api@ca94118's, create" in found  # no runs: n/a, not left out
    assert (
        "**users-api**, this service, `users-api serve`; **users-api@ca94118**, users-api as it was at commit" in text
    )
    assert "| users-api@ca94118 | 5,000 |" in text
    assert "`python -m bench.run --quick --systems users-api,http-ceiling --against ca94118` (a part of" in text


def test_the_results_file_says_when_wrk_is_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    assert "; wrk: not installed" in write_report(tmp_path / "run.md")
