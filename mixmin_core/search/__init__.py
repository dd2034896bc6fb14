"""Search baselines over mixtures: random search, RegMix, Bayesian optimisation and published run tables.

>>> from mixmin_core.search import load_run_table, prior_for, regmix_fit_choose
"""
# not bayesopt() itself: ``mixmin_core.search.bayesopt`` names its module
from mixmin_core.search.bayesopt import bo_table
from mixmin_core.search.run_tables import OwnTable, RunTable, load_run_table, prior_for
from mixmin_core.search.swarm import (
           random_search,
           random_search_table,
           regmix,
           regmix_fit_choose,
)

__all__ = ["OwnTable", "RunTable", "bo_table", "load_run_table", "prior_for", "random_search",
           "random_search_table", "regmix", "regmix_fit_choose"]
