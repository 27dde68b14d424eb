"""TTS worker: Piper voices, streamed as PCM chunks over the bus."""
