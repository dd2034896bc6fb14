"""Small real inputs for the chemistry tests: slices of ToxCast, and files in the public PCBA formats."""
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

TOXCAST = Path(os.environ["MIXMIN_DATA_DIR"]) / "chem" / "toxcast.csv.gz"
ASSAYS = ["ATG_ERE_CIS_up", "ATG_ERa_TRANS_up", "ATG_NRF2_ARE_CIS_up", "ATG_PPARg_TRANS_up", "ATG_PXRE_CIS_up"]


@pytest.fixture(scope="session")
def toxcast_head():
    """The first 400 ToxCast molecules with five assays (real labels; 15-64 positives each)."""
    return pd.read_csv(TOXCAST, nrows=400)[["smiles"] + ASSAYS]


@pytest.fixture
def pcba128_file(tmp_path, toxcast_head):
    """A ``pcba.csv.gz`` in MoleculeNet's exact column layout: PCBA-<AID> columns, mol_id, smiles."""
    aids = ["PCBA-1030", "PCBA-1379", "PCBA-1452", "PCBA-1454", "PCBA-1457"]
    frame = toxcast_head[ASSAYS].copy()
    frame.columns = aids
    frame["mol_id"] = [f"CID{1000 + i}" for i in range(len(frame))]
    frame["smiles"] = toxcast_head["smiles"]
    path = tmp_path / "chem" / "pcba.csv.gz"
    path.parent.mkdir()
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def pcba1328_file(tmp_path, toxcast_head):
    """A Graphium PCBA-1328 Parquet: 'Unnamed: 0', SMILES, assayID-<AID> (float64, NaN), CID, SID."""
    frame = pd.DataFrame({"Unnamed: 0": np.arange(len(toxcast_head)), "SMILES": toxcast_head["smiles"]})
    for aid, col in zip(["1030", "1379", "1452", "1454", "1457"], ASSAYS):
        frame[f"assayID-{aid}"] = toxcast_head[col].astype("float64")
    frame["CID"] = np.arange(len(frame), dtype=np.int64) + 5000
    frame["SID"] = np.arange(len(frame), dtype=np.int64) + 9000
    path = tmp_path / "pcba_1328_1564k.parquet"
    frame.to_parquet(path, index=False)
    return path
