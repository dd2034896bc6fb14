"""ECFP fingerprints: agreement with RDKit's dense bit vectors, invalid SMILES, the cache."""
import logging

import numpy as np
import pytest

from mixmin_core.chem import fingerprints as F
from mixmin_core.errors import InputError

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "not a molecule", "", "C1CC1N"]


def test_matches_rdkit_dense_fingerprints():
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    fps = F.featurize_smiles(SMILES, radius=2, n_bits=2048)
    assert fps.matrix.shape == (6, 2048) and fps.matrix.dtype == np.uint8
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    for i, s in enumerate(SMILES):
        mol = Chem.MolFromSmiles(s) if s else None
        if mol is None:
            continue
        np.testing.assert_array_equal(fps.matrix[i].toarray().ravel(), gen.GetFingerprintAsNumPy(mol))


def test_invalid_smiles_are_masked_counted_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="mixmin.chem"):
        fps = F.featurize_smiles(SMILES)
    np.testing.assert_array_equal(fps.valid, [True, True, True, False, False, True])
    assert fps.n_invalid == 2 and fps.invalid_examples == ("not a molecule", "")
    assert fps.matrix[3].nnz == 0
    assert "2 of 6 SMILES could not be parsed" in caplog.text and "not a molecule" in caplog.text


def test_cache_round_trip(tmp_path):
    first, hit1 = F.cached_fingerprints(SMILES, cache_dir=tmp_path)
    second, hit2 = F.cached_fingerprints(SMILES, cache_dir=tmp_path)
    assert (hit1, hit2) == (False, True)
    assert (first.matrix != second.matrix).nnz == 0 and (first.valid == second.valid).all()
    assert second.invalid_examples == first.invalid_examples
    _, hit3 = F.cached_fingerprints(SMILES, radius=3, cache_dir=tmp_path)
    assert hit3 is False  # parameters are part of the key


@pytest.mark.parametrize("kw, msg", [({"radius": -1}, "radius must be a non-negative integer"),
                                     ({"n_bits": 4}, "n_bits must be an integer >= 8")])
def test_bad_parameters(kw, msg):
    with pytest.raises(InputError, match=msg):
        F.featurize_smiles(["CCO"], **kw)


def test_corrupt_cache_file_is_reported(tmp_path):
    bad = tmp_path / "f.npz"
    bad.write_bytes(b"junk")
    with pytest.raises(InputError, match=r"f\.npz: not a readable fingerprint file"):
        F.load_fingerprints(bad)
