"""The voice catalog: which voices this worker offers, and by what names.

A Piper voice is an ``.onnx`` model with its ``.onnx.json`` config beside it;
its name is the file name without ``.onnx`` (``en_US-joe-medium``). The
packaged Piper voice is always offered; a voices folder adds more, and
``VF_TTS_HIBARI`` adds hibari's packaged voice (``en_US-hibari-heart``, see
:mod:`tts_worker.hibari_engine`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .engine import SpeechEngine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceInfo:
    """One voice on disk, described from its config (nothing loaded yet)."""

    name: str
    model_path: Path
    language: str
    sample_rate: int
    quality: str
    #: The engine that speaks it: "piper" or "hibari".
    engine: str = "piper"

    @classmethod
    def from_model(cls, model_path: Path) -> VoiceInfo:
        config_path = Path(f"{model_path}.json")
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        return cls(
            name=model_path.name.removesuffix(".onnx"),
            model_path=model_path,
            language=str(config.get("language", {}).get("code") or config.get("espeak", {}).get("voice", "")),
            sample_rate=int(config["audio"]["sample_rate"]),
            quality=str(config.get("audio", {}).get("quality", "")),
        )

    def public(self) -> dict[str, Any]:
        """What clients may see (no file paths)."""
        data = asdict(self)
        del data["model_path"]
        return data


def discover(default_model: Path, voices_dir: Path | None) -> list[VoiceInfo]:
    """The default voice first, then every complete voice in ``voices_dir``.

    A model without its config, or with a config that cannot be read, is
    skipped with a warning: one broken file must not take the worker down.
    """
    found = [VoiceInfo.from_model(default_model)]
    if voices_dir is None:
        return found
    if not voices_dir.is_dir():
        log.warning("voices folder %s does not exist; offering only %s", voices_dir, found[0].name)
        return found
    names = {found[0].name}
    for model in sorted(voices_dir.glob("*.onnx")):
        try:
            info = VoiceInfo.from_model(model)
        except FileNotFoundError:
            log.warning("skipping voice %s: %s.json is missing", model.name, model.name)
            continue
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("skipping voice %s: unreadable config (%s)", model.name, exc)
            continue
        if info.name in names:
            continue
        names.add(info.name)
        found.append(info)
    return found


def resolve_model(choice: str, voices_dir: Path | None, packaged: Path) -> Path:
    """The model file for the ``default_voice`` setting: a path, a name in ``voices_dir`` or ""."""
    if not choice:
        return packaged
    as_path = Path(choice).expanduser()
    if as_path.suffix == ".onnx":
        return as_path
    if voices_dir is not None and (voices_dir / f"{choice}.onnx").exists():
        return voices_dir / f"{choice}.onnx"
    if packaged.name.removesuffix(".onnx") == choice:
        return packaged
    raise FileNotFoundError(f"default voice {choice!r} is neither an .onnx path nor a voice in {voices_dir}")


class VoiceCatalog:
    """Loaded voices by name, and the rule that maps a session's choice onto one."""

    def __init__(self, engines: Mapping[str, SpeechEngine], infos: list[VoiceInfo], default: str) -> None:
        if default not in engines:
            raise ValueError(f"default voice {default!r} is not loaded")
        self._engines = dict(engines)
        self.infos = [i for i in infos if i.name in self._engines]
        self.default = default

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.infos]

    def resolve(self, choice: str | None, language: str = "") -> SpeechEngine | None:
        """The voice for ``choice``; None when nothing matches.

        Empty or "default" means the default voice, unless the session speaks
        a ``language`` ("fr", "fr-CA") the default voice does not and a loaded
        voice does: the first such voice then (an English-only default such as
        hibari never reads French when a French Piper voice is there). Besides
        the exact name, a case-insensitive name or a unique part of one
        ("joe") is accepted, as people type what they heard, not the file name.
        """
        if not choice or choice.lower() == "default":
            return self._engines[self.for_language(language)]
        if choice in self._engines:
            return self._engines[choice]
        lowered = choice.lower()
        exact = [n for n in self._engines if n.lower() == lowered]
        partial = [n for n in self._engines if lowered in n.lower()]
        matches = exact or partial
        return self._engines[matches[0]] if len(matches) == 1 else None

    @property
    def languages(self) -> set[str]:
        """The languages of the loaded voices ("en", "fr")."""
        return {_primary(i.language) for i in self.infos}

    def for_language(self, language: str) -> str:
        """The default voice, or the first voice of ``language`` when the default does not speak it."""
        wanted = _primary(language)
        if not wanted or wanted == "auto":
            return self.default
        by_name = {i.name: i for i in self.infos}
        if _primary(by_name[self.default].language) == wanted:
            return self.default
        return next((i.name for i in self.infos if _primary(i.language) == wanted), self.default)

    def status(self) -> dict[str, Any]:
        """The health-key fields the gateway lists voices from."""
        return {
            "voices": self.names,
            "default_voice": self.default,
            "voice_info": [i.public() for i in self.infos],
        }


def _primary(language: str) -> str:
    """The primary subtag of a language code: "en_US", "en-us" and "EN" are all "en"."""
    return language.replace("-", "_").split("_")[0].lower()
