"""What both backends import: configs (with the Qwen3 attention ops' argument bundle),
initializers, validation, naming, sampling, the classifier spec, the KV cache of generation.
Nothing here imports numpy_impl, torch_impl or torch."""
