"""Chemistry: multi-assay tables, ECFP fingerprints, seeded per-assay splits and XGBoost proxies.

RDKit and XGBoost are imported only inside the functions of :mod:`.fingerprints` and :mod:`.proxies`.
"""
