"""The in-process DeepSeek-V4 inference engine: config, weights, kernels, KV cache, sampling,
the V4 chat encoding and an OpenAI-compatible server. It knows the model and nothing else:
it never imports agent/, tools/, prompts/ or textual."""
