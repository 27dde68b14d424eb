"""An OpenAI-compatible server (llama-cpp-python's own, started here) as the primary backend."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from llm_harness import load_llama, messages, read_until_done, running_service, send_turn, speak_entries

from llm_orchestrator.backends import LlamaCppBackend, OpenAICompatBackend
from voicefleet.bus import Bus
from voicefleet.messages import Notice, ReplyDelta, ReplyDone
from voicefleet.models import smollm2_gguf
from voicefleet.settings import BusSettings

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaCppBackend]:
    backend = load_llama()
    yield backend
    backend._llm.shutdown()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as sink:  # a file, not a pipe: a full pipe would stall the server
        process = subprocess.Popen(
            [
                sys.executable, "-m", "llm_orchestrator.openai_server", "--model", str(smollm2_gguf()),
                "--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "1024",
                "--model_alias", "smollm2", "--verbose", "False",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    yield process, base_url
    process.terminate()
    process.wait(timeout=10)


async def test_the_server_streams_and_the_embedded_model_takes_over_when_it_stops(
    bus: Bus, bus_settings: BusSettings, llama: LlamaCppBackend, server: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, base_url = server
    remote = OpenAICompatBackend(base_url, "smollm2", "not-needed", max_tokens=32, temperature=0)
    async with running_service(bus_settings, [remote, llama], max_tokens=32, backend_retries=1, retry_backoff_s=0.05):
        turn = await send_turn(bus, "s1", "Tell me about the sun.")
        out = await read_until_done(bus, "s1", turn.turn_id)
        done = messages(out, ReplyDone)[-1]
        assert done.backend == "openai" and not messages(out, Notice)
        deltas = messages(out, ReplyDelta)
        assert len(deltas) > 5 and "".join(d.text for d in deltas) == done.text
        assert [e.message.seq for e in await speak_entries(bus, turn.turn_id)] == list(range(done.chunks))

        process.terminate()
        process.wait(timeout=10)

        turn = await send_turn(bus, "s1", "And the moon?")
        out = await read_until_done(bus, "s1", turn.turn_id)
    done = messages(out, ReplyDone, turn.turn_id)[-1]
    assert done.backend == "llamacpp" and done.text
    notices = messages(out, Notice, turn.turn_id)
    assert [n.code for n in notices] == ["llm_fallback"] and "openai" in notices[0].message
    assert await speak_entries(bus, turn.turn_id)
