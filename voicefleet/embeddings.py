"""Sentence embeddings with all-MiniLM-L6-v2 on onnxruntime: one encoder for every service.

The packaged int8 ONNX model returns the last hidden state; sentence-transformers
would mean-pool it over the real tokens and L2-normalize, so we do the same
(cosine similarity is then a dot product). No torch, no network. The tools
worker wraps it for llama-index (file and note search); the orchestrator uses
it to find the nearest command template of a paraphrase.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
from tokenizers import Tokenizer

DIMENSION = 384


class MiniLM:
    """all-MiniLM-L6-v2 (ONNX, CPU): 384-dimensional, normalized embeddings."""

    def __init__(
        self, model_path: Path, tokenizer_path: Path, threads: int = 0, max_tokens: int = 256, batch_size: int = 32
    ) -> None:
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Other services share these cores: don't burn them spinning between batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.batch_size = batch_size
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The packaged tokenizer pads every input to 128; pad to the batch's longest instead.
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.tokenizer = tokenizer

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts`` as a ``(len(texts), 384)`` float32 array (rows normalized)."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        # Batch texts of similar length together: padding is wasted compute.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            out[batch] = self._embed_batch([texts[i] or " " for i in batch])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return cast(np.ndarray, (pooled / np.clip(norms, 1e-12, None)).astype(np.float32))


def load_minilm(threads: int = 0) -> MiniLM:
    """The packaged model and tokenizer (see :mod:`voicefleet.models`), warmed up."""
    from . import models

    encoder = MiniLM(models.minilm_onnx(), models.minilm_tokenizer(), threads=threads)
    encoder.embed(["warm up"])
    return encoder
