"""`twinlm book`: the book's chapters replayed with its exact recipe, in NumPy and in PyTorch,
beside the numbers the book prints.

    stream.py     the book's random stream (torch's global generator), drawn in the book's order
    loader.py     the book's DataLoader over token windows, drawing as torch's DataLoader draws
    sampling.py   generate_text_simple and generate (temperature, top-k, torch.multinomial's draws)
    recipe.py     chapter 5's training as a task for the one loop, and train_model_simple
    values.json   the book's printed values, each with its notebook and cell
    table.py      the comparison table (quantity | book | this run | match) and --json
    chapters.py   ch04, ch05, ch06 and `twinlm book` itself
    score.py      `twinlm score`: per-token loss, perplexity and entropy of a text
"""
