"""Scheduled and requested runs: how fast they start, and what serving costs.

Run: ``python benchmarks/schedules.py [--runs 30] [--deployments 1000] [--hold 60]``.

Every number comes from real processes on a real database file (and a real server for
the last latency), read back from the stored state history:

(a) due time → Pending (the launcher claimed it) and → Running, for an interval
    deployment served by ``serve()``. Due → Pending is headwater's own latency (budget:
    p99 < 100 ms); Pending → Running is the run's new interpreter starting and importing
    the flow, reported separately, next to ``python -c "import headwater"`` alone.
(b) ``headwater deployment run`` in another process → Pending (budget: p99 < 500 ms
    embedded), measured from the run's Scheduled state.
(c) the same through a server, ``HEADWATER_API_URL`` set for both (budget: p99 < 200 ms).
(d) one serve process holding N deployments with minutely crons: the time to schedule
    them, then its own CPU (children excluded) and resident memory over ``--hold`` s.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

BUDGET_DUE_P99_MS = 100.0
BUDGET_CLI_P99_MS = 500.0
BUDGET_SERVER_P99_MS = 200.0

FLOWS = """
from headwater import flow

@flow
def tick(n: int = 0) -> int:
    return n
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update(HEADWATER_HOME=str(home), HEADWATER_LOGGING_TO_CONSOLE="false", **extra)
    env["PYTHONPATH"] = str(home)
    return env


def _serve(home: Path, body: str, **extra: str) -> subprocess.Popen[bytes]:
    (home / "bench_flows.py").write_text(FLOWS)
    script = home / "serve_bench.py"
    script.write_text("from bench_flows import tick\nfrom headwater import serve\n" + body)
    return subprocess.Popen(
        [sys.executable, str(script)],
        env=_env(home, **extra),
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _query(home: Path, sql: str, *args: object) -> list[tuple]:
    path = home / "headwater.db"
    if not path.exists():
        return []
    connection = sqlite3.connect(path, timeout=30)
    try:
        return connection.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        connection.close()


def _wait(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def _ts(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def _state_times(home: Path, run_id: str) -> dict[str, datetime.datetime]:
    rows = _query(
        home,
        "SELECT event, occurred FROM events WHERE resource_id = ?",
        f"headwater.flow-run.{run_id}",
    )
    return {name.rsplit(".", 1)[-1]: _ts(occurred) for name, occurred in rows}


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def _report(label: str, values: list[float], budget: float | None = None) -> None:
    p50, p99 = _percentiles(values)
    verdict = ""
    if budget is not None:
        verdict = f"  budget p99 < {budget:.0f} ms: {'ok' if p99 < budget else 'OVER'}"
    print(f"  {label:<44} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   (n={len(values)}){verdict}")


def due_latency(runs: int) -> None:
    print(f"(a) interval deployment, every 1 s, {runs} runs")
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        process = _serve(home, 'serve(tick.to_deployment("every", interval=1), limit=10)\n')
        try:
            _wait(
                lambda: (
                    len(_query(home, "SELECT id FROM flow_runs WHERE state_type = 'COMPLETED'"))
                    >= runs + 2
                ),
                runs * 3 + 60,
                "the runs",
            )
        finally:
            _stop(process)
        rows = _query(
            home,
            "SELECT id, expected_start_time FROM flow_runs WHERE state_type = 'COMPLETED'"
            " ORDER BY expected_start_time",
        )[2:]  # the first runs share the serve process's own start-up
        to_pending, to_running = [], []
        for run_id, due in rows:
            times = _state_times(home, run_id)
            to_pending.append((times["Pending"] - _ts(due)).total_seconds() * 1000)
            to_running.append((times["Running"] - times["Pending"]).total_seconds() * 1000)
    _report("due -> Pending (claimed, headwater's own)", to_pending, BUDGET_DUE_P99_MS)
    _report("Pending -> Running (new interpreter + import)", to_running)
    started = []
    for _ in range(10):
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import headwater"], check=True)
        started.append((time.perf_counter() - begin) * 1000)
    _report('python -c "import headwater" (for reference)', started)


def _requests(home: Path, count: int, deployment: str, **extra: str) -> list[float]:
    latencies = []
    for index in range(count):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "headwater",
                "deployment",
                "run",
                deployment,
                "-p",
                f"n={index}",
                "--output",
                "json",
            ],
            env=_env(home, **extra),
            capture_output=True,
            text=True,
            check=True,
        )
        import json

        run_id = json.loads(result.stdout)["id"]
        latencies.append(run_id)
    return latencies  # type: ignore[return-value]


def cli_latency(count: int) -> None:
    print(f"(b) `headwater deployment run` from another process, {count} requests")
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        process = _serve(home, 'serve(tick.to_deployment("manual"), limit=10)\n')
        try:
            _wait(lambda: _query(home, "SELECT id FROM deployments"), 60, "serve")
            run_ids = _requests(home, count, "tick/manual")
            _wait(
                lambda: (
                    len(_query(home, "SELECT id FROM flow_runs WHERE state_type = 'COMPLETED'"))
                    >= count
                ),
                count * 3 + 60,
                "the runs",
            )
        finally:
            _stop(process)
        values = []
        for run_id in run_ids:
            times = _state_times(home, str(run_id))
            values.append((times["Pending"] - times["Scheduled"]).total_seconds() * 1000)
    _report("request (Scheduled) -> Pending, embedded", values, BUDGET_CLI_P99_MS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_latency(count: int) -> None:
    print(f"(c) the same through a server, {count} requests")
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        server_home, client_home = root / "server", root / "client"
        server_home.mkdir()
        client_home.mkdir()
        port = _free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "headwater",
                "server",
                "start",
                "--port",
                str(port),
                "--no-access-log",
            ],
            env=_env(server_home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            import httpx

            def ready() -> bool:
                try:
                    return httpx.get(f"{api_url}/ready", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            _wait(ready, 60, "the server")
            process = _serve(
                client_home,
                'serve(tick.to_deployment("remote"), limit=10)\n',
                HEADWATER_API_URL=api_url,
            )
            try:
                _wait(lambda: _query(server_home, "SELECT id FROM deployments"), 60, "serve")
                time.sleep(1.0)  # the launcher's feed subscription
                run_ids = _requests(client_home, count, "tick/remote", HEADWATER_API_URL=api_url)
                _wait(
                    lambda: (
                        len(
                            _query(
                                server_home,
                                "SELECT id FROM flow_runs WHERE state_type = 'COMPLETED'",
                            )
                        )
                        >= count
                    ),
                    count * 3 + 60,
                    "the runs",
                )
            finally:
                _stop(process)
            values = []
            for run_id in run_ids:
                times = _state_times(server_home, str(run_id))
                values.append((times["Pending"] - times["Scheduled"]).total_seconds() * 1000)
        finally:
            _stop(server)
    _report("request (Scheduled) -> Pending, via server", values, BUDGET_SERVER_P99_MS)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime, children excluded


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def holding(deployments: int, hold: float) -> None:
    print(f"(d) one serve process holding {deployments} deployments with minutely crons")
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        body = textwrap.dedent(
            f"""
            deployments = [tick.to_deployment(f"d{{i}}", cron="* * * * *", catchup="latest")
                           for i in range({deployments})]
            serve(*deployments, limit=2)
            """
        )
        begin = time.monotonic()
        process = _serve(home, body)
        try:
            expected = deployments * 61
            _wait(
                lambda: (
                    _query(home, "SELECT count(*) FROM flow_runs")[0][0] >= expected
                    if _query(home, "SELECT count(*) FROM flow_runs")
                    else False
                ),
                600,
                "the first scheduling pass",
            )
            filled = time.monotonic() - begin
            cpu_before, wall_before = _cpu_seconds(process.pid), time.monotonic()
            rss = []
            while time.monotonic() - wall_before < hold:
                time.sleep(1.0)
                rss.append(_rss_mib(process.pid))
            cpu = (_cpu_seconds(process.pid) - cpu_before) / (time.monotonic() - wall_before)
            runs = _query(home, "SELECT count(*) FROM flow_runs")[0][0]
        finally:
            _stop(process)
    print(f"  registered and scheduled {expected} runs in {filled:.1f} s (from process start)")
    print(f"  serve's own CPU over {hold:.0f} s: {cpu * 100:.1f}% of one core")
    print(f"  serve's resident memory: {statistics.median(rss):.0f} MiB median, {max(rss):.0f} max")
    print(f"  flow runs stored at the end: {runs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=60.0)
    parser.add_argument("--skip-holding", action="store_true")
    args = parser.parse_args()
    due_latency(args.runs)
    cli_latency(args.requests)
    server_latency(args.requests)
    if not args.skip_holding:
        holding(args.deployments, args.hold)


if __name__ == "__main__":
    main()
