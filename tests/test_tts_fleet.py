"""Two TTS worker processes (``python -m tts_worker``) sharing the sentences of one turn."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from test_tts_worker import check_turn_complete
from tts_support import all_sentences_done, chunks_of, read_until

from voicefleet.bus import Bus
from voicefleet.messages import SpeakRequest, new_id

pytestmark = [pytest.mark.models, pytest.mark.fleet]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def log_files(tmp_path: Path) -> Iterator[list[tuple[Path, BinaryIO]]]:
    """Where the workers log: files, not pipes, as a full pipe would block a worker."""
    paths = [tmp_path / f"tts-{n}.log" for n in range(2)]
    files = [open(path, "wb") for path in paths]
    yield list(zip(paths, files, strict=True))
    for f in files:
        f.close()


@pytest.fixture
async def two_workers(
    fleet_env: dict[str, str], bus: Bus, log_files: list[tuple[Path, BinaryIO]]
) -> AsyncIterator[list[Path]]:
    """Two worker processes, ready; yields their log files."""
    env = {**fleet_env, "VF_TTS_CONCURRENCY": "1"}
    logs = [path for path, _ in log_files]
    files = [f for _, f in log_files]
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-m", "tts_worker", cwd=ROOT, env=env, stderr=f)
        for f in files
    ]
    try:
        async with asyncio.timeout(60):
            while len([s for s in (await bus.health()).get("tts", []) if s.get("ready")]) < 2:
                if any(p.returncode is not None for p in procs):
                    raise RuntimeError("a TTS worker exited while starting")
                await asyncio.sleep(0.2)
        yield logs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for f in files:
            f.flush()
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log.read_text()[-2000:]  # a clean stop on SIGTERM


async def test_every_sentence_of_a_turn_arrives_complete(bus: Bus, two_workers: list[Path]) -> None:
    sentences = [
        "Sure, here is what I found.",
        "The museum opens at 9:30 am.",
        "Tickets cost $12.50 for adults.",
        "Children under 12 go in for free.",
        "",
    ]
    turn = new_id()
    for seq, text in enumerate(sentences):
        await bus.enqueue(
            bus.keys.speak,
            SpeakRequest(
                session_id="fleet", turn_id=turn, seq=seq, text=text, sample_rate=16000,
                final=seq == len(sentences) - 1,
            ),
        )  # fmt: skip
    messages = await read_until(bus, "fleet", all_sentences_done(len(sentences)), wait_s=30)
    chunks = chunks_of(messages)
    check_turn_complete(chunks, len(sentences))
    assert {c.turn_id for c in chunks} == {turn}
    assert all(c.sample_rate == 16000 for c in chunks)
    async with asyncio.timeout(5):  # each entry is acked just after its last chunk went out
        while (await bus.redis.xpending(bus.keys.speak, "tts"))["pending"]:  # noqa: ASYNC110 - polls Redis
            await asyncio.sleep(0.05)
