"""A model reply on its way to the client and to speech, through the reply gate.

Tokens go to the chunker; the chunks it cuts go through :class:`guard.ReplyGate`
and only then to TTS. Until the gate has judged the first chunk, the text is
held back from the client too, so a rejected start leaves no trace and the
turn can ask the model again. After that, text streams token by token as
before. When the gate ends the reply (sentence limit, or a bad later chunk),
the text after the last spoken chunk is not sent either.
"""

from __future__ import annotations

from .chunker import SpeechChunker
from .guard import LONG_ENOUGH, ReplyGate
from .reply import Reply


class GatedSpeech:
    """Feeds one model call's text to a :class:`Reply` through a chunker and a gate."""

    def __init__(self, reply: Reply, chunker: SpeechChunker, gate: ReplyGate) -> None:
        self.reply = reply
        self.chunker = chunker
        self.gate = gate
        self._held: list[str] = []  # text not shown yet: the gate has not judged the start
        self.rest: list[str] = []  # the last chunks to speak, once the model is done
        self.final_sent = False  # the reply's last chunk went to TTS already

    async def feed(self, text: str) -> bool:
        """Add streamed text; False when the reply ends here (stop the model)."""
        chunks = self.chunker.feed(text)
        was_open = self.gate.opened
        speak = self.gate.offer(chunks)
        if not was_open:
            self._held.append(text)
            if not self.gate.opened:
                return not self.gate.done
            text, self._held = "".join(self._held), []
        if self.gate.stopped:
            # The reply ends with the chunk just cut: what follows it is not shown.
            text = text[: max(0, len(text) - self.chunker.pending_chars)].rstrip()
        if text:
            await self.reply.delta(text)
        for i, chunk in enumerate(speak):
            # At the sentence limit the last chunk is the reply's last: TTS gets it marked final.
            self.final_sent = self.gate.stopped == LONG_ENOUGH and i == len(speak) - 1
            if not await self.reply.speak(chunk, final=self.final_sent):
                return False  # cancelled
        return not self.gate.done

    async def finish(self) -> None:
        """The model is done: judge what is left; ``rest`` holds the chunks to speak last."""
        if self.gate.done:
            return
        was_open = self.gate.opened
        self.rest = self.gate.offer(self.chunker.flush(), final=True)
        if not was_open and self.gate.opened and self._held:
            await self.reply.delta("".join(self._held))
            self._held = []

    @property
    def said(self) -> str:
        """What passed the gate (the words spoken or about to be)."""
        return " ".join(self.gate.said)
