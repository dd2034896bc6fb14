import pytest

from mixmin_core import InputError
from mixmin_core.runs import datasets


def test_resolves_local_copies_from_data_dir_with_checksums():
    for name in ("toxcast", "toxcast_assays", "pcba128_assays", "text/wikipedia", "text/piqa_train"):
        path = datasets.resolve(name)
        assert path.exists() and datasets.verify(name, path), name


def test_explicit_path_wins_and_must_exist(tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text("smiles,a\n")
    assert datasets.resolve("toxcast", f) == f
    with pytest.raises(InputError, match=r"nope\.csv: file not found \(given explicitly for dataset 'toxcast'\)"):
        datasets.resolve("toxcast", tmp_path / "nope.csv")


def test_unknown_dataset():
    with pytest.raises(InputError, match="unknown dataset 'zinc'"):
        datasets.resolve("zinc")


def test_missing_offline_file_says_where_to_put_it(monkeypatch):
    monkeypatch.setenv("MIXMIN_OFFLINE", "1")
    with pytest.raises(InputError, match=r"Put the file at .*chem/pcba\.csv\.gz.*MIXMIN_DATA_DIR"):
        datasets.resolve("pcba128")
    with pytest.raises(InputError, match="no public direct download"):
        datasets.resolve("pcba1328")


#: Registered datasets that ../shared/data does not hold (large or hub-only downloads).
NOT_IN_SHARED = {"pcba128", "pcba1328", "text/openwebmath"}


def test_every_registered_local_file_is_present():
    missing = [n for n, d in datasets.REGISTRY.items()
               if n not in NOT_IN_SHARED and not (datasets.data_dir() / d.relpath).exists()]
    assert missing == []


def test_without_the_variable_the_shared_data_beside_the_checkout_is_used(monkeypatch):
    """README: with MIXMIN_DATA_DIR unset, ../shared/data beside the checkout (it looked inside the checkout)."""
    from pathlib import Path

    beside = Path(__file__).resolve().parents[3] / "shared" / "data"  # tests/core/ -> the checkout's parent
    monkeypatch.delenv("MIXMIN_DATA_DIR", raising=False)
    assert datasets.data_dir() == (beside if beside.is_dir() else None)
    if beside.is_dir():  # as in development and CI here
        assert datasets.resolve("toxcast").is_file()
