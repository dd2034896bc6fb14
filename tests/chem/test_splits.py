"""Per-assay stratified 64/16/20 splits, seeded per trial."""
import numpy as np
import pytest

from mixmin_core.chem import splits as S
from mixmin_core.errors import InputError


@pytest.fixture
def labels():
    rng = np.random.default_rng(0)
    lab = np.full(1000, -1, dtype=np.int8)
    tested = rng.random(1000) < 0.7
    lab[tested] = (rng.random(tested.sum()) < 0.1).astype(np.int8)
    return lab


def test_parts_partition_the_labelled_valid_molecules(labels):
    valid = np.ones(1000, bool)
    valid[:50] = False
    code = S.assay_split(labels, seed=0, trial=0, assay="a", valid=valid)
    usable = (labels >= 0) & valid
    assert ((code >= 0) == usable).all()
    n = usable.sum()
    fit, val, test = (S.part(code, p) for p in ("fit", "val", "test"))
    assert len(set(fit) | set(val) | set(test)) == n
    assert abs(test.size - 0.2 * n) <= 2 and abs(val.size - 0.16 * n) <= 3
    for part in (fit, val, test):  # stratified: every part keeps the positive rate
        assert abs(labels[part].mean() - labels[usable].mean()) < 0.02
    np.testing.assert_array_equal(S.part(code, ("fit", "val")), np.sort(np.concatenate([fit, val])))


def test_seeded_per_trial_and_assay(labels):
    a = S.assay_split(labels, seed=0, trial=0, assay="a")
    np.testing.assert_array_equal(a, S.assay_split(labels, seed=0, trial=0, assay="a"))
    assert (a != S.assay_split(labels, seed=0, trial=1, assay="a")).any()
    assert (a != S.assay_split(labels, seed=0, trial=0, assay="b")).any()
    assert (a != S.assay_split(labels, seed=1, trial=0, assay="a")).any()


def test_split_table_save_load(tmp_path, labels):
    table = np.stack([labels, labels[::-1]], axis=1)
    codes = S.split_table(table, ["a", "b"], seed=3, trial=2)
    np.testing.assert_array_equal(codes[:, 0], S.assay_split(labels, seed=3, trial=2, assay="a"))
    S.save_splits(tmp_path / "s.npz", codes, ["a", "b"])
    loaded, names = S.load_splits(tmp_path / "s.npz")
    np.testing.assert_array_equal(loaded, codes)
    assert names == ("a", "b")


def test_bad_fraction(labels):
    with pytest.raises(InputError, match="test_fraction must be a fraction in"):
        S.assay_split(labels, seed=0, trial=0, assay="a", test_fraction=1.5)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 44, 127])
@pytest.mark.parametrize("test_fraction,val_fraction", [(0.2, 0.2), (0.99, 0.2), (0.5, 0.9), (0.05, 0.99)])
def test_split_sizes_are_what_assay_split_gives(n, test_fraction, val_fraction):
    """The check before any work reads the fit size from split_sizes: it must be the split's own."""
    code = S.assay_split(np.ones(n, dtype=np.int8), seed=0, trial=0, assay="a", test_fraction=test_fraction,
                         val_fraction=val_fraction)
    assert S.split_sizes(n, test_fraction, val_fraction) == tuple(int((code == c).sum()) for c in (S.FIT, S.VAL, S.TEST))
