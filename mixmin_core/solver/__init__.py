"""The solver core: proxy outputs, objectives, MixMin and its baselines, constraints, bootstrap, results."""
