"""The benchmarks, side by side in one run: each figure a median, printed as a ratio next to
its target (never a pass/fail on an absolute time: machines are noisy).

    python benchmarks/run.py [--quick] [--section N ...] [--repeat N] [--no-real]

1. the fake against real LXD (pylxd 2.4.2 as the client);  target: fake >= 20x faster
2. the floor: a bare Werkzeug app on the same listener;     target: fake <= 1.5x per GET
3. our client against pylxd, both on the fake;               target: ours <= 0.5x
4. fixture cost: lxd_client per test, start+stop, reset;    targets: 1 ms, 20 ms, 1 ms
5. scale: 10,000 instances, 1,000 background operations;    targets: < 0.5 s, < 300 MB

Exits 0 when every section ran (missed targets are reported, not failed) unless ``--strict``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_clients  # noqa: E402
import bench_fixtures  # noqa: E402
import bench_floor  # noqa: E402
import bench_real  # noqa: E402
import bench_scale  # noqa: E402
from harness import Report  # noqa: E402

SECTIONS = {1: bench_real.run, 2: bench_floor.run, 3: bench_clients.run, 4: bench_fixtures.run,
            5: bench_scale.run}

# name: (full size, --quick size); --repeat N overrides every repeat_* value
SIZES = {
    "repeat_get": (300, 10),
    "repeat_cycle": (30, 2),
    "repeat_instance": (5, 1),
    "repeat_client": (5, 1),
    "repeat_pytest": (5, 1),
    "repeat_control": (50, 3),
    "repeat_scale": (5, 1),
    "instances": (1000, 20),
    "cycles": (200, 5),
    "execs": (50, 3),
    "tests": (500, 10),
    "instances_scale": (10_000, 50),
    "ops": (1000, 20),
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as handle:
            kb = int(handle.readline().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{os.cpu_count()} CPUs ({cpu}){mem}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for the test suite)")
    parser.add_argument("--section", type=int, action="append", choices=sorted(SECTIONS),
                        help="run only this section (may be repeated)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="repetitions of every measurement (default: per measurement)")
    parser.add_argument("--lxd-endpoint", default="/var/lib/lxd/unix.socket",
                        help="unix socket of the real LXD host (section 1)")
    parser.add_argument("--no-real", action="store_true", help="skip the real host")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    opts = parser.parse_args(argv)
    for name, (full, quick) in SIZES.items():
        value = quick if opts.quick else full
        if opts.repeat is not None and name.startswith("repeat_"):
            value = opts.repeat
        setattr(opts, name, value)
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    print(f"pytest-lxd benchmarks, {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {machine()}")
    if opts.quick:
        print("--quick: tiny sizes, the figures mean nothing")
    report = Report()
    failed = []
    for number in opts.section or sorted(SECTIONS):
        try:
            SECTIONS[number](report, opts)
        except Exception:  # noqa: BLE001 - report it and go on with the next section
            failed.append(number)
            report.note(f"section {number} FAILED:\n{traceback.format_exc()}")
    missed = report.missed
    print(f"\n{len(missed)} target(s) missed"
          + (f": {', '.join(row.name for row in missed)}" if missed else ""))
    if failed:
        print(f"sections that failed to run: {', '.join(map(str, failed))}")
        return 2
    return 1 if opts.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
