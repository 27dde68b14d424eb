"""audio_client: talk to the assistant through the gateway.

``python -m audio_client`` is the laptop client (microphone and speaker through
PyAudio, reconnecting) and, with ``--wav``/``--text``, the headless client that
scripts, tests and benchmarks use; :mod:`audio_client.headless` is its
importable core (``HeadlessClient``, ``run_turn``, ``TurnResult``).
"""
