"""Sentence embeddings with all-MiniLM-L6-v2 on onnxruntime, as a llama-index embed model.

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
import onnxruntime as ort  # type: ignore[import-untyped]
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import PrivateAttr
from tokenizers import Tokenizer

DIMENSION = 384


class MiniLMEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 (ONNX, CPU): 384-dimensional, normalized embeddings."""

    max_tokens: int = 256
    _session: ort.InferenceSession = PrivateAttr()
    _tokenizer: Tokenizer = PrivateAttr()
    _inputs: set[str] = PrivateAttr()

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
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Other services share these cores: don't burn them spinning between batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The packaged tokenizer pads every input to 128; pad to the batch's longest instead.
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tokenizer

    @classmethod
    def class_name(cls) -> str:
        return "MiniLMEmbedding"

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts`` as a ``(len(texts), 384)`` float32 array (rows normalized)."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        # Batch texts of similar length together: padding is wasted compute.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.embed_batch_size):
            batch = order[start : start + self.embed_batch_size]
            out[batch] = self._embed_batch([texts[i] or " " for i in batch])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return cast(np.ndarray, (pooled / np.clip(norms, 1e-12, None)).astype(np.float32))

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
