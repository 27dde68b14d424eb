"""The tools worker: notes, memory, file search, web search, timers and time, per user.

See ``tools_worker/README.md``; run with ``python -m tools_worker --help``.
"""
