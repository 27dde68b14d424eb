"""``describe`` -> ``info``: what the live workers report in their health keys, in Wyoming's terms.

Nothing is listed that no running worker offers: Whisper models come from the
STT workers' ``asr_models``, voices from the TTS workers' ``voice_info``, wake
words from the STT workers' ``wake_words``.
"""

from __future__ import annotations

from typing import Any, Literal

from wyoming.info import AsrModel, AsrProgram, Attribution, Info, TtsProgram, TtsVoice, WakeModel, WakeProgram

Kind = Literal["asr", "tts", "wake"]

FLEET = Attribution(name="voicefleet", url="https://github.com/voicefleet/voicefleet")
WHISPER = Attribution(name="OpenAI Whisper (faster-whisper)", url="https://github.com/SYSTRAN/faster-whisper")
PIPER = Attribution(name="Piper", url="https://github.com/OHF-Voice/piper1-gpl")
HIBARI = Attribution(name="hibari", url="https://github.com/MMWilliams/hibari")
OPENWAKEWORD = Attribution(name="openWakeWord", url="https://github.com/dscripka/openWakeWord")
VERSION = "0.1.0"


def _ready(health: dict[str, list[dict[str, Any]]], service: str) -> list[dict[str, Any]]:
    return [w for w in health.get(service, []) if w.get("ready")]


def asr_program(health: dict[str, list[dict[str, Any]]]) -> AsrProgram:
    models: dict[str, AsrModel] = {}
    for worker in _ready(health, "stt"):
        for model in worker.get("asr_models", []):
            models.setdefault(model["name"], AsrModel(
                name=model["name"], attribution=WHISPER, installed=True, description=model.get("description"),
                version=None, languages=list(model.get("languages", [])),
            ))  # fmt: skip
    return AsrProgram(name="voicefleet-stt", attribution=FLEET, installed=bool(models), version=VERSION,
                      description="The fleet's speech-to-text workers (Whisper)", models=list(models.values()))


def tts_program(health: dict[str, list[dict[str, Any]]]) -> TtsProgram:
    voices: dict[str, TtsVoice] = {}
    for worker in _ready(health, "tts"):
        for voice in worker.get("voice_info", []):
            language = str(voice.get("language") or "")
            voices.setdefault(voice["name"], TtsVoice(
                name=voice["name"], attribution=HIBARI if voice.get("engine") == "hibari" else PIPER,
                installed=True, version=None,
                description=f"{voice['name']} ({voice.get('quality', '')}, {voice.get('sample_rate', '')} Hz)",
                languages=[language] if language else [],
            ))  # fmt: skip
    return TtsProgram(name="voicefleet-tts", attribution=FLEET, installed=bool(voices), version=VERSION,
                      description="The fleet's text-to-speech workers (hibari, Piper)", voices=list(voices.values()))


def wake_program(health: dict[str, list[dict[str, Any]]]) -> WakeProgram:
    words = sorted({w for worker in _ready(health, "stt") for w in worker.get("wake_words", [])})
    models = [
        WakeModel(name=word, attribution=OPENWAKEWORD, installed=True, description=word.replace("_", " "),
                  version=None, languages=["en"], phrase=word.replace("_", " "))
        for word in words
    ]
    return WakeProgram(name="voicefleet-wake", attribution=FLEET, installed=bool(models), version=VERSION,
                       description="The fleet's wake word detection (openWakeWord)", models=models)


def info(kind: Kind, health: dict[str, list[dict[str, Any]]]) -> Info:
    """The ``info`` answer of one server: only its own kind of program."""
    if kind == "asr":
        return Info(asr=[asr_program(health)])
    if kind == "tts":
        return Info(tts=[tts_program(health)])
    return Info(wake=[wake_program(health)])
