"""The gateway: JWT-authenticated WebSocket sessions, health, metrics and the browser page."""
