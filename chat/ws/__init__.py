"""The chat websocket (`/ws/chat/`): a transport over the run service, like the HTTP API."""
