"""`twinlm book`: the book's chapters replayed with its exact recipe, in NumPy and in PyTorch,
beside the numbers the book prints; and `twinlm score`, the perplexity sidebar token by token.

    stream.py     the book's random stream (torch's global generator), drawn in the book's order
    loader.py     the book's DataLoader over token windows, drawing as torch's DataLoader draws
    sampling.py   generate_text_simple and generate (temperature, top-k, torch.multinomial's draws)
    recipe.py     chapter 5's training as a task for the one loop, and train_model_simple
    ch04.py, ch05.py, ch06.py    the chapters' cells in order, each row beside its cell
    values.json   the book's printed values, each with its notebook, commit and cell
    table.py      the comparison table (quantity | book | this run | match) and --json
    main.py       `twinlm book` itself; score.py: `twinlm score`
"""
