"""The LLM orchestrator: transcripts in, streamed reply text and sentence-sized speech requests out."""
