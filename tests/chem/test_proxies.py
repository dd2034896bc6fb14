"""XGBoost proxies and final models: weighted mixtures of sources, learning on real fingerprints."""
import numpy as np
import pytest

from mixmin_core.chem import fingerprints as F
from mixmin_core.chem import proxies as P
from mixmin_core.errors import InputError

from .conftest import ASSAYS


@pytest.fixture(scope="module")
def xy(toxcast_head):
    fps = F.featurize_smiles(toxcast_head["smiles"].tolist())
    X = fps.matrix.astype(np.float32).tocsr()
    y = toxcast_head[ASSAYS[2]].to_numpy()
    keep = ~np.isnan(y)
    return X[keep], y[keep].astype(np.int8)


def test_allocate_rows_follows_weights_within_budget():
    rng = np.random.default_rng(0)
    sizes = np.array([1000, 1000, 50, 400])
    n = P.allocate_rows(sizes, np.array([0.5, 0.3, 0.2, 0.0]), 1000, rng)
    assert n[3] == 0 and n[2] == 50  # zero weight: nothing; capped at its size
    assert abs(n.sum() - 1000) <= 2 and abs(n[0] / n[1] - 0.5 / 0.3) < 0.02
    np.testing.assert_array_equal(P.allocate_rows(sizes, np.ones(4), 0, rng), sizes)  # no cap: everything


def test_mixture_rows_give_each_source_its_weight():
    rng = np.random.default_rng(1)
    source_rows = [np.arange(0, 800), np.arange(800, 900), np.arange(900, 2900)]
    w = np.array([0.2, 0.5, 0.3])
    rows, src, sw = P.mixture_rows(source_rows, w, max_rows=600, rng=rng)
    assert rows.size <= 601 and len(np.unique(rows)) == rows.size
    for p in range(3):
        assert np.isin(rows[src == p], source_rows[p]).all()
        assert sw[src == p].sum() == pytest.approx(w[p])
    with pytest.raises(InputError, match="no source has both a positive weight and training rows"):
        P.mixture_rows(source_rows, np.zeros(3), rng=rng)


def test_proxy_learns_real_assay(xy):
    X, y = xy
    rng = np.random.default_rng(0)
    order = rng.permutation(y.size)
    tr, te = order[: int(0.7 * y.size)], order[int(0.7 * y.size):]
    clf = P.train_classifier(X[tr], y[tr], n_estimators=30, max_depth=4)
    p = clf.predict(X[te])
    assert p.dtype == np.float32 and ((p > 0) & (p < 1)).all()
    assert P.average_precision(y[te], p) > y[te].mean() + 0.1  # a random ranking scores about the positive rate
    assert clf.compute == 30 * tr.size


def test_weights_change_the_model_and_zero_weight_rows_are_ignored(xy):
    X, y = xy
    flipped = 1 - y
    Xd = X[np.r_[np.arange(y.size), np.arange(y.size)]]
    yd = np.r_[y, flipped]
    keep_true = P.train_classifier(Xd, yd, sample_weight=np.r_[np.ones(y.size), np.zeros(y.size)], n_estimators=20)
    keep_flip = P.train_classifier(Xd, yd, sample_weight=np.r_[np.zeros(y.size), np.ones(y.size)], n_estimators=20)
    assert P.average_precision(y, keep_true.predict(X)) > 0.8 > P.average_precision(y, keep_flip.predict(X))


def test_single_class_gives_constant_model(xy):
    X, _ = xy
    clf = P.train_classifier(X[:20], np.zeros(20))
    assert clf.constant == pytest.approx(P.EPS) and (clf.predict(X[:3]) == clf.constant).all() and clf.compute == 0


def test_grid_search_picks_from_the_paper_grid(xy):
    X, y = xy
    best, compute = P.grid_search(X, y, grid={"n_estimators": (5, 20), "max_depth": (2, 4)}, folds=3)
    assert best["n_estimators"] in (5, 20) and best["max_depth"] in (2, 4)
    assert compute == pytest.approx(3 * (5 + 5 + 20 + 20) * (2 / 3) * y.size, rel=0.01)


def test_metrics_against_direct_formulas():
    y = np.array([1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    assert P.average_precision(y, p) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert P.log_loss(y, p) == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert np.isnan(P.average_precision(np.zeros(3), p[:3]))


def test_bad_training_input(xy):
    X, y = xy
    with pytest.raises(InputError, match="X and y must have the same, positive number of rows"):
        P.train_classifier(X, y[:-1])
    with pytest.raises(InputError, match="sample_weight must be"):
        P.train_classifier(X, y, sample_weight=-np.ones(y.size))
    with pytest.raises(InputError, match="device must be 'auto', 'cpu' or 'cuda'"):
        P.resolve_device("tpu")


def test_weights_below_training_precision_train_on_no_rows():
    """An evolving run's warm start floors every weight at 1e-6; sources left near there took the row cap's
    leftover budget (all their rows) and changed the final model of an update that changed nothing."""
    from mixmin_core.chem.proxies import mixture_rows, training_weights

    w = training_weights([0.6, 0.399996, 1e-6, 3e-6])
    assert w == [0.6, 0.4, 0.0, 0.0]
    rows = [np.arange(0, 100), np.arange(100, 150), np.arange(150, 900), np.arange(900, 1600)]
    picked, source, _ = mixture_rows(rows, w, max_rows=200, rng=np.random.default_rng(0))
    assert set(source.tolist()) == {0, 1} and len(picked) == 150  # every row of the two real sources, no more
