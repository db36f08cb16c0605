"""The HTTP layer's shared pieces (controllers still live beside their use cases in app/core/api.py)."""
