"""The VAD/STT worker: wake word, speech start/stop and transcripts for each session's audio."""
