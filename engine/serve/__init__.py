"""The HTTP server and its wire formats (OpenAI Chat Completions today)."""
