"""The optional short Whisper encoder window (VF_STT_ENCODER_WINDOW_S)."""

from __future__ import annotations

from collections.abc import Iterator

import faster_whisper.transcribe as fwt
import numpy as np
import pytest

from vad_stt_worker.stt import shorten_encoder_window


@pytest.fixture
def stock_padding() -> Iterator[None]:
    original = fwt.pad_or_trim
    yield
    fwt.pad_or_trim = original  # the patch is process-wide: leave other tests the stock one


def test_window_follows_the_speech_above_a_floor(stock_padding: None) -> None:
    shorten_encoder_window(1000)
    assert fwt.pad_or_trim(np.zeros((80, 200))).shape == (80, 1000)  # short command: the floor
    assert fwt.pad_or_trim(np.zeros((80, 1500))).shape == (80, 1600)  # speech plus one second
    assert fwt.pad_or_trim(np.zeros((80, 2950))).shape == (80, 3000)  # never past Whisper's 30 s
    shorten_encoder_window(1200)  # applying it twice wraps the stock function, not the wrapper
    assert fwt.pad_or_trim(np.zeros((80, 10))).shape == (80, 1200)
