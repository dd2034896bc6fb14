"""Search baselines over mixtures: random search, RegMix, Bayesian optimisation and published run tables."""
