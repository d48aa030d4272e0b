"""Open-loop HTTP load generators: requests start on schedule, whether or not earlier ones finished.

Closed-loop tools (a fixed number of connections that wait for each answer) hide latency when the
server slows down (coordinated omission); Twilio does not wait for us, so neither does this. Each
request opens its own connection, as gunicorn's sync workers close the connection after each answer.

Two implementations of the same schedule (Poisson arrivals, latency from the scheduled send time):
`run_native` drives `loadgen.c`, built here with the system C compiler, which costs a fraction of a
core at thousands of requests a second; `run_open_loop` is pure asyncio, for machines without a C
compiler, and itself needs about a core at 1,000/s, so its ceilings are the generator's, not the app's.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent / "loadgen.c"
BUILD = Path(__file__).resolve().parent / "results" / "loadgen"


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...]


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def summary(self) -> dict[str, float | int]:
        lat = sorted(self.latencies_ms)

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else float("nan")

        return {
            "requests": len(lat) + self.errors,
            "ok": sum(n for s, n in self.statuses.items() if 200 <= s < 300),
            "errors": self.errors + sum(n for s, n in self.statuses.items() if not 200 <= s < 300),
            "rps": round((len(lat) + self.errors) / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": round(lat[-1], 2) if lat else float("nan"),
            "mean_ms": round(statistics.fmean(lat), 2) if lat else float("nan"),
        }


def raw(host: str, port: int, request: Request) -> bytes:
    """The request's bytes on the wire: a form POST that asks the server to close the connection."""
    head = [
        f"POST {request.path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/x-www-form-urlencoded",
        f"Content-Length: {len(request.body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in request.headers),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + request.body


def native_available() -> bool:
    return shutil.which("gcc") is not None or BUILD.exists()


def build_native() -> Path:
    """Compile loadgen.c with the system gcc when the binary is missing or older than the source."""
    if BUILD.exists() and BUILD.stat().st_mtime >= SOURCE.stat().st_mtime:
        return BUILD
    BUILD.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(BUILD), str(SOURCE), "-lm"], check=True)
    return BUILD


def run_native(
    host: str,
    port: int,
    requests: Sequence[Request],
    rate_per_s: float,
    duration_s: float,
    seed: int = 1,
    timeout: float = 15.0,
) -> dict[str, Any]:
    """The same open-loop schedule from `loadgen.c`; returns its summary (as `Result.summary()`,
    plus the generator's own send lag and CPU seconds)."""
    return _native(host, port, requests, str(rate_per_s), duration_s, seed, timeout)


def saturate_native(
    host: str, port: int, requests: Sequence[Request], in_flight: int, duration_s: float
) -> dict[str, Any]:
    """`loadgen.c` in a closed loop: `in_flight` requests at all times, each answer starting the
    next, so its "rps" is the server's throughput at saturation."""
    return _native(host, port, requests, f"c{in_flight}", duration_s, 1, 15.0)


def _native(
    host: str, port: int, requests: Sequence[Request], rate: str, duration_s: float, seed: int, timeout: float
) -> dict[str, Any]:
    binary = build_native()
    with tempfile.NamedTemporaryFile(suffix=".req") as file:
        for request in requests:
            data = raw(host, port, request)
            file.write(b"%d\n" % len(data) + data)
        file.flush()
        args = [host, str(port), file.name, rate, str(duration_s), str(seed), str(timeout)]
        out = subprocess.run([str(binary), *args], check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out))


async def _one(host: str, port: int, request: Request, result: Result, timeout: float) -> None:
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.write(raw(host, port, request))
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        await asyncio.wait_for(reader.read(), timeout)  # until the server closes
        writer.close()
        status = int(status_line.split()[1])
    except (TimeoutError, OSError, IndexError, ValueError):
        result.errors += 1
        return
    result.latencies_ms.append((time.perf_counter() - started) * 1000)
    result.statuses[status] = result.statuses.get(status, 0) + 1


async def run_open_loop(
    host: str,
    port: int,
    requests: Sequence[Request],
    rate_per_s: float,
    duration_s: float,
    seed: int = 1,
    timeout: float = 15.0,
) -> Result:
    """Send `rate_per_s` requests a second for `duration_s`, cycling through `requests`.

    Arrivals are Poisson (exponential gaps), like many independent callers' waitUrl loops.
    """
    rng = random.Random(seed)
    result = Result()
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    next_at = 0.0
    i = 0
    while next_at < duration_s:
        delay = start + next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(host, port, requests[i % len(requests)], result, timeout)))
        i += 1
        next_at += rng.expovariate(rate_per_s)
    await asyncio.gather(*tasks)
    result.elapsed_s = time.perf_counter() - start
    return result
