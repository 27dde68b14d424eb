"""Settings of the LLM orchestrator (environment prefix ``VF_LLM_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from voicefleet.settings import ServiceSettings

#: The persona shipped with the package, used when ``persona_file`` is not set.
DEFAULT_PERSONA = Path(__file__).with_name("persona.txt")

BACKEND_KINDS = ("llamacpp", "openai")


class LlmSettings(ServiceSettings):
    """Everything the orchestrator can be told; read once in ``__main__``."""

    model_config = SettingsConfigDict(env_prefix="VF_LLM_", env_file=".env", extra="ignore")

    # --- backends -----------------------------------------------------------
    backends: str = Field(
        "llamacpp",
        description="Comma-separated fallback chain, first is primary: llamacpp, openai",
    )
    model_path: Path | None = Field(None, description="GGUF for llama.cpp (default: packaged SmolLM2)")
    threads: int = Field(2, ge=1, description="CPU threads for in-process llama.cpp")
    n_ctx: int = Field(4096, ge=512, description="llama.cpp context window in tokens")
    contexts: int = Field(
        4,
        ge=1,
        description="llama.cpp contexts on the one model (~114 MiB each at n_ctx 4096, ~90 of it KV cache): "
        "replies generated at once, token by token, the ones nobody hears yet first; each session keeps its prompt "
        "cached; with GPU offload each context holds its own copy of the offloaded layers",
    )
    weight_repack: bool = Field(
        False,
        description="llama.cpp weight repacking for its AMX/AVX-512 kernels; off: llama-cpp-python 0.3.36 "
        "crashes (SIGSEGV) with it on CPUs with AMX",
    )
    gpu_layers: int = Field(0, ge=-1, description="llama.cpp layers offloaded to the GPU (-1: all; needs a GPU build)")
    openai_base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="OpenAI-compatible server (llama_cpp.server and vLLM use 8000)"
    )
    openai_model: str = Field("local", description="Model name sent to the OpenAI-compatible server")
    openai_api_key: SecretStr = Field(SecretStr("not-needed"), description="API key (any for local servers)")
    openai_context_window: int = Field(8192, ge=512, description="Context window of the remote model in tokens")
    openai_function_calling: bool = Field(
        False, description="Offer the tools to the OpenAI-compatible model as functions"
    )
    tool_grammar: bool = Field(
        False,
        description="llama.cpp: offer the tools under a grammar (one valid call or plain text); "
        "off by default: SmolLM2-135M called the right tool for 0 of 8 commands with it, as without",
    )
    request_timeout_s: float = Field(30.0, gt=0, description="Whole-request timeout of a remote backend")

    # --- generation ---------------------------------------------------------
    max_tokens: int = Field(96, ge=1, description="Longest reply in tokens")
    max_sentences: int = Field(
        2, ge=0, description="Spoken replies end after this many sentences (0: no limit) unless asked for more"
    )
    long_max_tokens: int = Field(240, ge=1, description="Longest reply in tokens when the user asks for a long one")
    long_max_sentences: int = Field(
        6, ge=0, description="Sentence limit when the user asks for a long answer (a story, details)"
    )
    reply_checks: bool = Field(
        True,
        description="Check each chunk before it is spoken: no echo of the user, no copy of an earlier reply, "
        "no claimed action; a bad start is retried once, then an honest fallback",
    )
    temperature: float = Field(0.3, ge=0, description="Sampling temperature (small models need it low)")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling cut-off")
    repeat_penalty: float = Field(1.1, ge=1.0, description="llama.cpp only: small models loop without it")

    # --- fallback -----------------------------------------------------------
    first_token_timeout_s: float = Field(5.0, gt=0, description="A backend silent this long has failed")
    last_resort_timeout_s: float = Field(
        30.0, gt=0, description="The same for the last backend of the chain: nothing is left to fall back to"
    )
    backend_retries: int = Field(1, ge=0, description="Retries of a failing backend before the next one")
    retry_backoff_s: float = Field(0.25, ge=0, description="First retry delay; doubles per retry")
    backend_cooldown_s: float = Field(30.0, ge=0, description="Skip a failed backend this long")

    # --- conversation -------------------------------------------------------
    persona_file: Path | None = Field(None, description="System prompt file (default: persona.txt)")
    history_turns: int = Field(8, ge=0, description="Past exchanges given to the model")
    history_tokens: int = Field(1200, ge=0, description="Token budget of the history in the prompt")
    history_ttl_s: int = Field(3600, gt=0, description="History expires this long after the last turn")
    merge_unheard_s: float = Field(
        20.0,
        ge=0,
        description="A turn cancelled because the person went on speaking before any of its reply was heard "
        "is answered with the next turn as one request (its words first) when that comes within this long; 0: never",
    )
    stale_turn_s: float = Field(
        60.0, gt=0, description="A turn reclaimed after this long is reported failed, not answered"
    )

    # --- tools --------------------------------------------------------------
    tool_timeout_s: float = Field(4.0, gt=0, description="Wait this long for the tools worker")
    memory_timeout_s: float = Field(0.5, gt=0, description="Wait this long for the user's memory")
    memory_cache_s: float = Field(30.0, ge=0, description="Reuse a user's fetched memory this long")
    intents: bool = Field(True, description="Run explicit commands (notes, timers...) without the LLM")
    intent_nearest: bool = Field(
        True, description="Also map paraphrases to the nearest command template by meaning (MiniLM, ~5 ms)"
    )
    intent_files: str = Field(
        "",
        description="Comma-separated extra sentence-template files (hassil YAML, 'language: en'), e.g. commands "
        "for tools of MCP servers (intents named mcp.<server>.<tool>)",
    )
    remote_tools_cache_s: float = Field(
        2.0, ge=0, description="Reuse the list of MCP servers' tools published by the tools worker this long"
    )
    intent_threshold: float = Field(
        0.75, gt=0, le=1, description="Cosine to the nearest command template above which a paraphrase is that command"
    )

    # --- speech chunking ----------------------------------------------------
    first_chunk_min_words: int = Field(3, ge=1, description="Words before the first clause may be cut")
    first_chunk_max_words: int = Field(
        8,
        ge=0,
        description="A first clause with no comma is cut before a conjunction or relative word (and, that, "
        "because...) once 4 words came, before is/are/was/were after a 5-word subject, before a preposition once "
        "this many words came (0: at clause boundaries only)",
    )
    max_chunk_chars: int = Field(240, ge=40, description="Cut a sentence longer than this at a clause")
    code_phrase: str = Field("I've put the code on your screen.", description="Spoken instead of code")

    # --- scale --------------------------------------------------------------
    concurrency: int = Field(4, ge=1, description="Turns handled at once by this process")

    @property
    def backend_names(self) -> list[str]:
        names = [n.strip().lower() for n in self.backends.split(",") if n.strip()]
        unknown = [n for n in names if n not in BACKEND_KINDS]
        if unknown or not names:
            raise ValueError(f"VF_LLM_BACKENDS: unknown backend(s) {unknown}; use {', '.join(BACKEND_KINDS)}")
        return names

    @property
    def intent_file_paths(self) -> list[Path]:
        return [Path(p.strip()).expanduser() for p in self.intent_files.split(",") if p.strip()]

    @property
    def persona_path(self) -> Path:
        return self.persona_file or DEFAULT_PERSONA
