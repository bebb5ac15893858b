"""API benchmark: Academia Live's course list and enroll against the seed's Django + DRF stack.

With 10,000 courses, wrk (Debian's) measures requests/s and p50/p99 latency of

  * the course list, 20 per page: our first page and a keyset (cursor) page deep in the
    list, signed in as a student, against DRF's `GET /courses/?page=3` (../shared/baselines/drf,
    gunicorn -w 2, SQLite), measured in the same run on the same machine;
  * enroll, `POST /courses/{id}/enroll`, every request a new (student, course) pair over
    pre-made tokens and all courses. DRF's baseline has no enroll: ours is reported alone.

on SQLite and PostgreSQL (Debian's server, started in a temporary folder), and prints a
table with the ratio to DRF (the aim: at least 3x). Everything it starts is stopped at the
end, also on Ctrl-C or an error.

    .venv/bin/python scripts/bench/api.py [--duration 10] [--connections 50]
        [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for _path in (HERE, REPO, REPO / "tests"):  # our helpers, the project, support.postgres_server
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from child_processes import Children, free_port, log_tail  # noqa: E402
from seeding import LOGIN_PASSWORD, LOGIN_USERNAME, Seeded, seed  # noqa: E402
from tree_cpu import tree_cpu_total  # noqa: E402
from wrk_load import WrkError, WrkReport, run_wrk, write_enroll_script, wrk_version  # noqa: E402

from config.loading import load_settings  # noqa: E402

DRF_PACKAGES = ["django", "djangorestframework", "gunicorn"]
DRF_PATH = "/courses/?page=3"
ENROLL_PATHS = ("/courses/{course_id}/enroll", "/courses/{course_id}/enroll/")
AIM = 3.0
BUSY_WARNING = 0.15  # share of the CPUs others kept busy that makes a measurement suspect


@dataclass
class Row:
    stack: str
    database: str
    endpoint: str
    report: WrkReport | None
    note: str = ""
    ratio: float | None = None
    # CPU time per request of the server's processes and of the database server's (over
    # the measured run): what each stack costs, whatever else shared the machine.
    server_cpu_ms: float | None = None
    db_cpu_ms: float | None = None
    busy_before: float = 0.0  # share of the CPUs others kept busy just before the run
    # The DRF measurement made just before this one, which its ratio is taken against:
    # other load on a shared machine changes from minute to minute.
    versus: Row | None = None


class Skip(Exception):
    """A measurement that cannot be made in this run; the message says why."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load first")
    p.add_argument("--timeout", type=int, default=10, help="wrk's per-request timeout, s")
    p.add_argument("--databases", default="sqlite,postgresql")
    p.add_argument("--endpoints", default="list,enroll", help="what to measure of ours")
    p.add_argument("--courses", type=int, default=10_000)
    p.add_argument("--students", type=int, default=2_000, help="students of the enroll load")
    p.add_argument("--teachers", type=int, default=100)
    p.add_argument("--categories", type=int, default=10)
    p.add_argument("--capacity", type=int, default=100, help="seats per course")
    p.add_argument("--deep-page", type=int, default=250,
                   help="the cursor page measured besides the first (250 = mid-list)")
    p.add_argument("--drf-dir", type=Path, default=REPO.parent / "shared/baselines/drf")
    p.add_argument("--drf-venv", type=Path, default=REPO / "var/bench/.venv-drf",
                   help="created, and Django/DRF/gunicorn installed, when missing")
    p.add_argument("--no-drf", action="store_true", help="measure Academia Live alone")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    p.add_argument("--academia-command", type=shlex.split, default=None, metavar="COMMAND",
                   help="run this instead of `academia` (migrate, serve): e.g. a patched build")
    p.add_argument("--py-spy", type=Path, metavar="DIR",
                   help="sample our server with py-spy during each measured run into DIR"
                   " (raw collapsed stacks; sampling costs throughput)")
    args = p.parse_args(argv)
    args.databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    unknown = set(args.databases) - {"sqlite", "postgresql"}
    if unknown:
        p.error(f"unknown databases: {sorted(unknown)}")
    args.endpoints = {e.strip() for e in args.endpoints.split(",") if e.strip()}
    if args.endpoints - {"list", "enroll"}:
        p.error(f"unknown endpoints: {sorted(args.endpoints - {'list', 'enroll'})}")
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.children = Children()
        self.postgres: list[Any] = []
        self.rows: list[Row] = []
        self.server_pid: int | None = None  # the server under load (gunicorn's master)
        self.db_pid: int | None = None  # PostgreSQL's postmaster, when ours uses it
        self.postmasters: list[int] = []  # of every PostgreSQL server started
        self.drf_proc: subprocess.Popen[bytes] | None = None
        self.drf_url = ""

    # -- measuring ---------------------------------------------------------------------
    def wrk(self, url: str, profile: str | None, **kw: Any) -> tuple[WrkReport, float, float]:
        """The measured run's report, and the CPU seconds the server and database used."""
        a = self.args
        common = dict(connections=a.connections, threads=a.threads, timeout_s=a.timeout)
        script_args = kw.pop("script_args", None)
        warm_args = kw.pop("warmup_script_args", script_args)
        if a.warmup > 0:
            run_wrk(url, duration_s=a.warmup, script_args=warm_args, **common, **kw)
        sampler = None
        if a.py_spy and profile and self.server_pid:
            a.py_spy.mkdir(parents=True, exist_ok=True)
            sampler = self.children.start(
                "py-spy",
                [Path(sys.executable).parent / "py-spy", "record", "--pid", str(self.server_pid),
                 "--duration", str(a.duration), "--rate", "200", "--format", "raw",
                 "--output", a.py_spy / f"{profile}.txt"],
                log=self.work / "py-spy.log",
            )
            time.sleep(0.5)  # attached before the load starts
        server = [self.server_pid] if self.server_pid else []
        db = [self.db_pid] if self.db_pid else []
        cpu_server, cpu_db = tree_cpu_total(server), tree_cpu_total(db)
        try:
            report = run_wrk(url, duration_s=a.duration, script_args=script_args, **common, **kw)
            return (report, tree_cpu_total(server) - cpu_server,
                    tree_cpu_total(db) - cpu_db)
        finally:
            if sampler is not None:
                try:
                    sampler.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
                self.children.stop(sampler)

    def our_cpu_seconds(self) -> float:
        """CPU time of everything this benchmark started: its children (servers, wrk) and
        the PostgreSQL servers (which pg_ctl detached from us)."""
        return tree_cpu_total([os.getpid(), *self.postmasters])

    def settle(self, limit_s: float = 30) -> float:
        """Wait until what we started is idle (a server may still be answering the queue
        the last run left, PostgreSQL analysing fresh rows), so no run pays for the one
        before; then the share of the CPUs that others kept busy over a second."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            before = self.our_cpu_seconds()
            time.sleep(0.5)
            if self.our_cpu_seconds() - before < 0.025:  # under 5% of one core
                break
        return others_busy_share(self.our_cpu_seconds)

    def measure(self, stack: str, database: str, endpoint: str, url: str, **kw: Any) -> Row:
        print(f"  measuring {stack} / {database} / {endpoint} ...", flush=True)
        profile = None
        if stack == "Academia Live":
            profile = f"{database}-{endpoint.split()[0]}-{len(self.rows)}"
        busy = self.settle()
        try:
            report, cpu_server, cpu_db = self.wrk(url, profile, **kw)
            row = Row(stack, database, endpoint, report)
            if report.requests:
                row.server_cpu_ms = 1000 * cpu_server / report.requests
                row.db_cpu_ms = 1000 * cpu_db / report.requests if self.db_pid else None
        except WrkError as exc:
            row = Row(stack, database, endpoint, None, note=f"wrk failed: {exc}")
            print(f"    {row.note}", flush=True)
        row.busy_before = busy
        if busy > BUSY_WARNING:
            print(f"    warning: other processes kept {busy:.0%} of the CPUs busy just before:"
                  " req/s will be low", flush=True)
        self.rows.append(row)
        return row

    # -- the DRF baseline ----------------------------------------------------------------
    def start_drf(self) -> None:
        """Set the baseline up and leave it running: it is measured next to each of ours."""
        a = self.args
        app = a.drf_dir / "app.py"
        if not app.is_file():
            raise Skip(f"no DRF baseline at {app}")
        venv = a.drf_venv
        python = venv / "bin/python"
        if not python.exists():
            print(f"creating {venv} ...", flush=True)
            venv.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        ready = subprocess.run(
            [python, "-c", "import django, rest_framework, gunicorn"], capture_output=True
        )
        if ready.returncode != 0:
            print(f"installing {' '.join(DRF_PACKAGES)} into {venv} ...", flush=True)
            subprocess.run(
                [python, "-m", "pip", "install", "-q", *DRF_PACKAGES], check=True
            )
        env = {**os.environ, "DRF_DB": str(self.work / "drf.sqlite3")}
        print("DRF baseline: creating its 10,000 courses ...", flush=True)
        subprocess.run([python, app, "setup"], cwd=a.drf_dir, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        port = free_port()
        proc = self.children.start(
            "gunicorn (DRF)",
            [venv / "bin/gunicorn", "-w", "2", "--chdir", a.drf_dir, "app:application",
             "-b", f"127.0.0.1:{port}"],
            log=self.work / "drf.log", env=env, cwd=a.drf_dir,
        )
        base = f"http://127.0.0.1:{port}"
        self.children.wait_http(proc, base + DRF_PATH)
        page = http_json("GET", base + DRF_PATH)
        if len(page.get("results", [])) != 20:
            raise RuntimeError(f"the DRF baseline answered an unexpected page: {page!r:.300}")
        self.drf_proc, self.drf_url = proc, base + DRF_PATH

    def measure_drf(self) -> Row | None:
        if self.drf_proc is None:
            return None
        ours = self.server_pid, self.db_pid
        self.server_pid, self.db_pid = self.drf_proc.pid, None
        try:
            return self.measure("Django+DRF", "sqlite", f"list GET {DRF_PATH}", self.drf_url)
        finally:
            self.server_pid, self.db_pid = ours

    def measure_list(self, database: str, endpoint: str, url: str, auth: dict[str, str]) -> None:
        drf = self.measure_drf()
        row = self.measure("Academia Live", database, endpoint, url, headers=auth)
        row.versus = drf

    # -- Academia Live ---------------------------------------------------------------------
    def academia(self, database: str) -> None:
        a = self.args
        folder = self.work / database
        folder.mkdir()
        port = free_port()
        env = {
            **os.environ,
            "ACADEMIA_DATA_DIR": str(folder / "var"),
            "ACADEMIA_HTTP_PORT": str(port),
            "ACADEMIA_HOST": "127.0.0.1",
            "ACADEMIA_PUBLIC_URL": "",
        }
        if database == "postgresql":
            from support.postgres_server import postgres_available, start_postgres

            if not postgres_available():
                raise Skip("PostgreSQL server binaries are missing (apt-get install postgresql)")
            print("starting PostgreSQL ...", flush=True)
            server = start_postgres(folder / "pg")
            self.postgres.append(server)
            env["ACADEMIA_DATABASE_URL"] = server.url
            self.db_pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
            self.postmasters.append(self.db_pid)
        else:
            env["ACADEMIA_DATABASE_URL"] = ""
        url = load_settings(environ=env).database_url
        academia = a.academia_command or academia_command()

        migrated = subprocess.run(
            [*academia, "migrate"], env=env, cwd=folder, capture_output=True, text=True
        )
        if migrated.returncode != 0:
            raise RuntimeError(f"academia migrate failed:\n{migrated.stdout}{migrated.stderr}")
        print(f"seeding {a.courses:,} courses, {a.students:,} students with tokens ...",
              flush=True)
        started = time.monotonic()
        seeded: Seeded = asyncio.run(
            seed(url, courses=a.courses, categories=a.categories, teachers=a.teachers,
                 students=a.students, capacity=a.capacity)
        )
        print(f"  seeded in {time.monotonic() - started:.1f}s", flush=True)

        proc = self.children.start(
            f"academia serve ({database})", [*academia, "serve"],
            log=folder / "academia.log", env=env, cwd=folder,
        )
        base = f"http://127.0.0.1:{port}"
        self.children.wait_http(proc, base + "/openapi.json")
        self.server_pid = proc.pid
        token = http_json(
            "POST", base + "/auth/login",
            {"username": LOGIN_USERNAME, "password": LOGIN_PASSWORD},
        )["token"]
        auth = {"Authorization": f"Bearer {token}"}

        if "list" in a.endpoints:
            first = "/courses/?limit=20"
            deep = follow_cursor(base, first, auth, a.deep_page)
            self.measure_list(database, f"list GET {first}", base + first, auth)
            self.measure_list(database, f"list cursor page {a.deep_page}", base + deep, auth)
        if "enroll" in a.endpoints:
            try:
                self.enroll(database, base, auth, seeded)
            except Skip as exc:
                print(f"  SKIPPED enroll: {exc}", flush=True)
                self.rows.append(Row("Academia Live", database, "enroll", None, note=str(exc)))
        self.children.stop(proc)
        self.server_pid = self.db_pid = None
        self.stop_postgres()  # the next database is measured on a quiet machine
        if proc.returncode not in (0, -signal.SIGTERM):
            print(f"  note: the server exited with {proc.returncode}; log tail:\n"
                  f"{log_tail(folder / 'academia.log')}", flush=True)

    def enroll(self, database: str, base: str, auth: dict[str, str], seeded: Seeded) -> None:
        a = self.args
        paths = http_json("GET", base + "/openapi.json").get("paths", {})
        declared = [p for p in ENROLL_PATHS if "post" in paths.get(p, {})]
        if not declared:
            raise Skip("POST /courses/{course_id}/enroll does not exist yet in this build")
        operation = paths[declared[0]]["post"]
        body = "{}" if "requestBody" in operation else ""
        # One real enroll first, as the signed-in student (not one of the load's students).
        probe = f"{base}/courses/{seeded.course_ids[-1]}/enroll"
        status, answer = http_call("POST", probe, body.encode() or None, auth)
        if status not in (200, 201):
            raise Skip(f"a probe enroll answered {status}: {answer[:300]}")
        script = self.work / f"enroll-{database}.lua"
        write_enroll_script(script, seeded.student_tokens, seeded.course_ids, a.threads, body)
        # Far enough apart that warm-up and measured requests never share a pair.
        offset = len(seeded.student_tokens) * len(seeded.course_ids) // (2 * a.threads)
        self.measure(
            "Academia Live", database, "enroll POST /courses/{id}/enroll", base + "/",
            script=script, script_args=[str(offset)], warmup_script_args=["0"],
        )

    # -- the end -------------------------------------------------------------------------------
    def stop_postgres(self) -> None:
        if self.postgres:
            from support.postgres_server import stop_postgres

            for server in self.postgres:
                stop_postgres(server)
            self.postgres.clear()

    def close(self) -> None:
        self.children.stop_all()
        self.stop_postgres()


def _cpu_jiffies() -> tuple[int, int]:
    """All CPUs' time so far from /proc/stat, in clock ticks: (total, idle + iowait)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    return sum(fields), fields[3] + fields[4]


def others_busy_share(ours: Callable[[], float], seconds: float = 1.0) -> float:
    """The share of all CPUs that processes other than ours (CPU seconds so far: `ours`)
    kept busy over `seconds`; 0 where /proc cannot tell."""
    try:
        total0, idle0 = _cpu_jiffies()
        ours0 = ours()
        time.sleep(seconds)
        total1, idle1 = _cpu_jiffies()
        ours1 = ours()
    except (OSError, ValueError, IndexError):
        return 0.0
    elapsed = total1 - total0
    if elapsed <= 0:
        return 0.0
    busy = elapsed - (idle1 - idle0) - (ours1 - ours0) * os.sysconf("SC_CLK_TCK")
    return max(busy, 0) / elapsed


def academia_command() -> list[str]:
    script = Path(sys.executable).parent / "academia"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mediaserver.cli"]


def http_call(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def http_json(
    method: str, url: str, payload: Any = None, headers: dict[str, str] | None = None
) -> Any:
    body = json.dumps(payload).encode() if payload is not None else None
    status, text = http_call(method, url, body, headers)
    if status >= 400:
        raise RuntimeError(f"{method} {url} answered {status}: {text[:300]}")
    return json.loads(text)


def follow_cursor(base: str, first: str, headers: dict[str, str], page: int) -> str:
    """The path of list page `page` (1 = first), following each page's `next`."""
    path = first
    for number in range(1, page):
        found = http_json("GET", base + path, headers=headers)
        if len(found["results"]) != 20 or not found["next"]:
            raise RuntimeError(f"page {number} of the list has no next page: {found!r:.300}")
        path = found["next"]
    return path


def ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def table(rows: list[Row]) -> str:
    head = ("stack", "database", "endpoint", "req/s", "p50", "p99", "errors", "vs DRF",
            "CPU/req")
    lines = [head]
    for row in rows:
        r = row.report
        if r is None:
            lines.append((row.stack, row.database, row.endpoint, "-", "-", "-", "-",
                          "skipped", "-"))
            continue
        if row.stack == "Django+DRF":
            versus = "reference"
        elif row.ratio is not None:
            versus = f"{row.ratio:.2f}x"
        else:
            versus = "n/a (DRF has none)" if row.endpoint.startswith("enroll") else "n/a"
        errors = r.non_2xx + r.socket_errors
        cpu = "-"
        if row.server_cpu_ms is not None:
            cpu = f"{row.server_cpu_ms:.1f} ms"
            if row.db_cpu_ms is not None:
                cpu += f" + db {row.db_cpu_ms:.1f}"
        lines.append((row.stack, row.database, row.endpoint, f"{r.requests_per_s:,.0f}",
                      ms(r.p50_ms), ms(r.p99_ms), f"{errors}/{r.requests}", versus, cpu))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(
            cell.rjust(w) if i >= 3 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_exit)
    work = Path(tempfile.mkdtemp(prefix="academia-bench-"))
    bench = Bench(args, work)
    cores = os.cpu_count() or 0
    print(f"Machine: {cores} CPU cores, {platform.python_implementation()} "
          f"{platform.python_version()}, {wrk_version()}", flush=True)
    print(f"  wrk, the server under test and its database share these {cores} cores.\n",
          flush=True)
    interrupted = False
    try:
        if not args.no_drf and "list" in args.endpoints:
            try:
                bench.start_drf()
            except Skip as exc:
                print(f"SKIPPED the DRF baseline: {exc}", flush=True)
        for database in args.databases:
            print(f"\nAcademia Live on {database}", flush=True)
            try:
                bench.academia(database)
            except Skip as exc:
                print(f"SKIPPED {database}: {exc}", flush=True)
                bench.rows.append(Row("Academia Live", database, "all", None, note=str(exc)))
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping what was started", file=sys.stderr)
    finally:
        bench.close()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if interrupted:
        return 130
    report(args, bench.rows, cores)
    return 0


def report(args: argparse.Namespace, rows: list[Row], cores: int) -> None:
    for row in rows:
        drf = row.versus
        if row.report and drf is not None and drf.report and drf.report.requests_per_s:
            row.ratio = row.report.requests_per_s / drf.report.requests_per_s
    print()
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency "
          f"(after {args.warmup}s of warm-up); {args.courses:,} courses; 20 per page")
    print(table(rows))
    print()
    print(f"Notes: {cores} CPU cores shared by wrk, the server and the database.")
    print("  DRF: gunicorn -w 2 (sync workers) on SQLite, the only database its baseline has;"
          " both of our databases are compared with it. It is measured just before each of our"
          " list measurements, and each ratio is to that DRF row (the one above it).")
    served = " ".join(args.academia_command) if args.academia_command else "academia"
    print(f"  Academia Live: `{served} serve`; lists are signed in as a student.")
    print("  Enroll: each request a new (student, course) pair; DRF's baseline has no enroll,"
          " so ours is reported alone.")
    print("  errors = non-2xx answers + socket errors (timeouts included), of all requests.")
    print("  CPU/req = CPU time of the server's processes per request (+ PostgreSQL's): the"
          " cost of a request; less sensitive than req/s to other load on the machine.")
    for row in rows:
        if row.note:
            print(f"  {row.stack} / {row.database} / {row.endpoint}: {row.note}")
    busy = [r.busy_before for r in rows if r.report is not None]
    if busy and max(busy) > BUSY_WARNING:
        print(f"  WARNING: other processes kept {min(busy):.0%} to {max(busy):.0%} of the CPUs"
              " busy just before the measurements: every req/s here is lower than on a quiet"
              " machine, by varying amounts; ratios are less trustworthy than usual.")
    ratios = [r.ratio for r in rows if r.ratio is not None]
    if ratios:
        verdict = "meets" if min(ratios) >= AIM else "does NOT meet"
        print(f"  List throughput vs DRF: {min(ratios):.2f}x to {max(ratios):.2f}x: "
              f"{verdict} the aim of {AIM:.0f}x.")
    for row in rows:
        drf = row.versus
        if drf is not None and drf.server_cpu_ms and row.server_cpu_ms:
            ours = row.server_cpu_ms + (row.db_cpu_ms or 0)
            print(f"  CPU per request, {row.database} / {row.endpoint}: ours {ours:.1f} ms"
                  f" (server + database) vs DRF's {drf.server_cpu_ms:.1f} ms:"
                  f" DRF/ours = {drf.server_cpu_ms / ours:.2f}.")
    if args.json:
        args.json.write_text(json.dumps(
            [{**{k: v for k, v in asdict(r).items() if k not in ("report", "versus")},
              **({k: v for k, v in asdict(r.report).items() if k != "raw"} if r.report else {}),
              "drf_requests_per_s": (
                  r.versus.report.requests_per_s if r.versus and r.versus.report else None)}
             for r in rows], indent=2))


if __name__ == "__main__":
    sys.exit(main())
