"""Sentence embeddings with all-MiniLM-L6-v2 (:mod:`voicefleet.embeddings`), as a llama-index embed model.

The packaged int8 ONNX model returns the last hidden state; sentence-transformers
would mean-pool it over the real tokens and L2-normalize, so we do the same
(cosine similarity is then a dot product, which FAISS ``IndexFlatIP`` computes).
No torch, no network.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import PrivateAttr

from voicefleet.embeddings import MiniLM


class MiniLMEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 (ONNX, CPU) as a llama-index embed model: 384-dimensional, normalized."""

    max_tokens: int = 256
    _encoder: MiniLM = PrivateAttr()

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        threads: int = 0,
        max_tokens: int = 256,
        embed_batch_size: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model_name="all-MiniLM-L6-v2", max_tokens=max_tokens, embed_batch_size=embed_batch_size, **kwargs
        )
        self._encoder = MiniLM(model_path, tokenizer_path, threads, max_tokens, embed_batch_size)

    @classmethod
    def class_name(cls) -> str:
        return "MiniLMEmbedding"

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts`` as a ``(len(texts), 384)`` float32 array (rows normalized)."""
        return self._encoder.embed(texts)

    # --- llama-index interface ---------------------------------------------
    def _get_query_embedding(self, query: str) -> Embedding:
        return cast(Embedding, self.embed([query])[0].tolist())

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return cast(Embedding, self.embed([text])[0].tolist())

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return cast(list[Embedding], self.embed(texts).tolist())


def load_embedder(threads: int = 0) -> MiniLMEmbedding:
    """The packaged model and tokenizer (see :mod:`voicefleet.models`), warmed up."""
    from voicefleet import models

    embedder = MiniLMEmbedding(models.minilm_onnx(), models.minilm_tokenizer(), threads=threads)
    embedder.embed(["warm up"])
    return embedder
