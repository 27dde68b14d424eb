"""Wyoming servers (speech to text, text to speech, wake word) in front of the fleet."""
