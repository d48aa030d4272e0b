"""A small open-loop HTTP load generator: requests start on schedule, whether or not earlier ones finished.

Closed-loop tools (a fixed number of connections that wait for each answer) hide latency when the
server slows down (coordinated omission); Twilio does not wait for us, so neither does this. Each
request opens its own connection, as gunicorn's sync workers close the connection after each answer.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


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


async def _one(host: str, port: int, request: Request, result: Result, timeout: float) -> None:
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        head = [
            f"POST {request.path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Content-Type: application/x-www-form-urlencoded",
            f"Content-Length: {len(request.body)}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in request.headers),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + request.body)
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
