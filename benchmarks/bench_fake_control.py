"""How fast the fake's controls are: start+stop and reset, as medians over repetitions.

    python benchmarks/bench_fake_control.py [--repeat N]

Prints each median as a ratio against its target (ratio <= 1 meets it) and exits non-zero
when a target is missed. Targets: start+stop <= 20 ms, reset <= 1 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fakeserver import FakeLXD  # noqa: E402
from tests.support import API  # noqa: E402

TARGETS_MS = {"start+stop": 20.0, "start+stop (with HTTPS)": 20.0, "reset": 1.0,
              "reset (after 50 changes)": 1.0}


def median_ms(fn: Callable[[], object], repeat: int, before: Callable[[], object] | None = None
              ) -> float:
    samples = []
    for _ in range(repeat):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def start_stop(fake: FakeLXD) -> None:
    fake.start()
    fake.stop()


def measure(repeat: int) -> dict[str, float]:
    """Median milliseconds of each control, keyed as in ``TARGETS_MS``."""
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        plain = FakeLXD(Path(tmp) / "plain")
        start_stop(plain)  # warm up
        results["start+stop"] = median_ms(lambda: start_stop(plain), repeat)
        secure = FakeLXD(Path(tmp) / "tls", https=True)
        start_stop(secure)  # the first start makes the TLS material once
        results["start+stop (with HTTPS)"] = median_ms(lambda: start_stop(secure), repeat)
        secure.close()

        plain.start()
        api = API.unix("fake", plain.socket_path)
        results["reset"] = median_ms(plain.reset, repeat)

        def change() -> None:
            for i in range(50):
                api.post("/1.0/profiles", {"name": f"p{i}", "config": {"user.k": "v"}})

        results["reset (after 50 changes)"] = median_ms(plain.reset, max(repeat // 5, 3),
                                                        before=change)
        api.session.close()
        plain.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    results = measure(args.repeat)

    missed = 0
    for name, value in results.items():
        target = TARGETS_MS[name]
        ratio = value / target
        missed += ratio > 1
        print(f"{name:28} median {value:7.3f} ms  target {target:5.1f} ms  "
              f"ratio {ratio:5.2f}  {'ok' if ratio <= 1 else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
