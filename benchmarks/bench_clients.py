"""Section 3: our client (``pytest_lxd.Client``) against pylxd 2.4.2, both on the same fake.

The same code drives both (ours keeps pylxd's API); a row that needs something our client
does not have yet says "not yet available" instead of failing.
"""

from __future__ import annotations

import statistics
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

from harness import (
    NOT_SERVED,
    NOT_YET,
    Report,
    Row,
    exec_served,
    fmt_time,
    instances_served,
    quiet_ws4py,
    running_fake,
    seed_busybox,
    seed_instances,
)

TARGET = 0.5  # ours <= 0.5x pylxd's time


def make_clients(socket_path: str) -> dict[str, Callable[[], Any]]:
    import pylxd

    import pytest_lxd

    def ours() -> Any:
        return pytest_lxd.Client(socket_path)

    def theirs() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pylxd.Client(endpoint=socket_path)

    return {"ours": ours, "pylxd": theirs}


def close(client: Any) -> None:
    if hasattr(client, "close"):
        client.close()
    else:
        client.api.session.close()


def paired(jobs: dict[str, Callable[[], object]], repeat: int, warmup: int = 1
           ) -> dict[str, float]:
    """Median seconds per job, the jobs taking turns."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(warmup):
        for job in jobs.values():
            job()
    for _ in range(repeat):
        for name, job in jobs.items():
            t0 = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(values) for name, values in times.items()}


def profile_cycles(client: Any, count: int) -> None:
    for index in range(count):
        profile = client.profiles.create(f"p-{uuid.uuid4().hex[:10]}",
                                         config={"user.bench": "1"})
        profile.description = f"update {index}"
        profile.save()
        profile.delete()


def read_all(client: Any) -> int:
    """``instances.all()`` and one attribute of each (a lazy object loads itself)."""
    count = 0
    for inst in client.instances.all():
        count += inst.status == "Stopped"
    return count


def execs(client: Any, name: str, count: int) -> None:
    inst = client.instances.get(name)
    for _ in range(count):
        result = inst.execute(["true"])
        if result.exit_code != 0:
            raise RuntimeError(f"exec of 'true' exited {result.exit_code}")


def add(report: Report, name: str, got: dict[str, float]) -> None:
    ratio = got["ours"] / got["pylxd"]
    report.add(Row(name, f"{fmt_time(got['ours']):>10} {fmt_time(got['pylxd']):>10}",
                   ratio=ratio, target=f"<= {TARGET:g}x", ok=ratio <= TARGET))


def run(report: Report, opts: Any) -> None:
    report.begin("3. Our client against pylxd 2.4.2, both on the same fake",
                 f"{'ours':>10} {'pylxd':>10}   ours/pylxd")
    repeat = opts.repeat_client
    with running_fake() as fake:
        factories = make_clients(fake.socket_path)
        connected: list[Any] = []

        def connect(make: Callable[[], Any]) -> Callable[[], None]:
            return lambda: connected.append(make())

        add(report, "connect (Client())",
            paired({name: connect(make) for name, make in factories.items()}, opts.repeat_get))
        for client in connected:
            close(client)
        clients = {name: make() for name, make in factories.items()}
        missing = [name for name, client in clients.items() if not hasattr(client, "instances")]

        label = f"instances.all() x{opts.instances}, .status"
        if not instances_served(fake):
            report.add(Row(label, "", note=f"{NOT_SERVED} by the fake"))
        elif missing:
            seed_instances(fake, opts.instances)
            report.add(Row(label, "", note=f"{NOT_YET} in {', '.join(missing)}"))
        else:
            seed_instances(fake, opts.instances)
            add(report, label, paired({name: (lambda c=c: read_all(c))
                                       for name, c in clients.items()}, repeat))

        add(report, f"{opts.cycles} profile create+save+delete",
            paired({name: (lambda c=c: profile_cycles(c, opts.cycles))
                    for name, c in clients.items()}, repeat))

        label = f"{opts.execs} execs"
        if not exec_served(fake):
            report.add(Row(label, "", note=f"{NOT_SERVED} by the fake"))
        elif missing:
            report.add(Row(label, "", note=f"{NOT_YET} in {', '.join(missing)}"))
        else:
            seed_busybox(fake)
            pylxd_client = clients["pylxd"]
            inst = pylxd_client.instances.create(
                {"name": "exec-bench", "source": {"type": "image", "alias": "busybox"}},
                wait=True)
            inst.start(wait=True)
            with quiet_ws4py():
                got = paired({name: (lambda c=c: execs(c, "exec-bench", opts.execs))
                              for name, c in clients.items()}, repeat, warmup=0)
            add(report, label, got)
        for client in clients.values():
            close(client)
    report.note(f"medians of {repeat} runs of each workload ({opts.repeat_get} for connect), "
                "the two clients taking turns; the fake runs in this process")
