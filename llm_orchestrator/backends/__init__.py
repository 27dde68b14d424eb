"""LLM backends behind one small interface, and the chain that falls back between them."""

from __future__ import annotations

from voicefleet.models import smollm2_gguf

from ..settings import LlmSettings
from .base import Backend, BackendError, Piece, ToolRequest
from .fallback import BackendsUnavailable, FallbackChain
from .llamacpp import LlamaCppBackend, LlamaCppLLM
from .openai_compat import OpenAICompatBackend

__all__ = [
    "Backend",
    "BackendError",
    "BackendsUnavailable",
    "FallbackChain",
    "LlamaCppBackend",
    "LlamaCppLLM",
    "OpenAICompatBackend",
    "Piece",
    "ToolRequest",
    "build_backends",
    "llamacpp_backend",
    "openai_backend",
]


def llamacpp_backend(settings: LlmSettings) -> LlamaCppBackend:
    """The in-process backend (model not loaded yet: ``start()`` loads it)."""
    model = settings.model_path or smollm2_gguf()
    return LlamaCppBackend(
        LlamaCppLLM(
            model_path=str(model),
            n_threads=settings.threads,
            n_ctx=settings.n_ctx,
            n_contexts=settings.contexts,
            n_gpu_layers=settings.gpu_layers,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            repeat_penalty=settings.repeat_penalty,
            weight_repack=settings.weight_repack,
        ),
        tool_grammar=settings.tool_grammar,
    )


def openai_backend(settings: LlmSettings) -> OpenAICompatBackend:
    return OpenAICompatBackend(
        settings.openai_base_url,
        settings.openai_model,
        settings.openai_api_key.get_secret_value(),
        context_window=settings.openai_context_window,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        timeout_s=settings.request_timeout_s,
        function_calling=settings.openai_function_calling,
    )


def build_backends(settings: LlmSettings) -> list[Backend]:
    """The backends named by ``VF_LLM_BACKENDS``, in order."""
    factories = {"llamacpp": llamacpp_backend, "openai": openai_backend}
    return [factories[name](settings) for name in settings.backend_names]
