from __future__ import annotations

import random
import time

from queue_app.sim import CallerScript

from .conftest import BASE, NUMBER, twiml

AGENTS = "+46800000009"


def test_it_runs_a_thousand_calls_through_queue_and_agents_quickly(make_emulator, fake):
    fake.docs["/voice"] = twiml('<Say>Välkommen</Say><Enqueue waitUrl="/wait">main</Enqueue>')
    fake.docs["/wait"] = lambda form: twiml(f'<Say>Plats {form["QueuePosition"]}</Say><Pause length="20"/>')
    fake.docs["/agent"] = twiml('<Dial action="/agent-next"><Queue>main</Queue></Dial>')
    fake.docs["/agent-next"] = twiml("<Redirect>/agent</Redirect>")
    emulator = make_emulator(events=("completed",))
    emulator.add_number(AGENTS, f"{BASE}/agent")
    emulator.create_queue("main")
    rng = random.Random(1)
    agents = [emulator.place_call(f"+4670000000{i}", AGENTS) for i in range(6)]
    callers = []
    for i in range(1000):
        emulator.advance(rng.expovariate(1 / 3.6))  # 1,000 calls in about an hour
        script = CallerScript(patience=rng.uniform(30, 300), talk_for=rng.uniform(10, 40))
        callers.append(emulator.place_call(f"+4671{i:07d}", NUMBER, script))

    started = time.perf_counter()
    emulator.advance(3600)
    elapsed = time.perf_counter() - started

    answered = [c for c in callers if any(kind == "bridge" for _, kind, _, _ in c.heard)]
    assert all(c.status == "completed" for c in callers)
    assert 0 < len(answered) < 1000
    assert emulator.queue_by_name("main").members == []
    assert all(a.status == "in-progress" for a in agents)
    assert elapsed < 60, f"virtual hour took {elapsed:.1f} s"
