"""The web pages people use: login, logout and the chat (its static files live here too)."""
