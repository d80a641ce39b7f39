"""What both backends import: configs, initializers, validation, naming, sampling, the classifier
spec. Nothing here imports numpy_impl, torch_impl or torch."""
