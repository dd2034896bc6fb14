"""Label tables, PCBA loaders (on files in the public formats), metadata and bad input."""
import gzip

import numpy as np
import pandas as pd
import pytest

from jobs.pipelines.chem import ChemConfig, validate
from mixmin_core.chem import data
from mixmin_core.chem.experiment import make_plan
from mixmin_core.errors import InputError

from .conftest import ASSAYS, TOXCAST


def test_toxcast_table_has_moleculenet_shape_and_codes():
    table = data.load_assay_table(TOXCAST)
    assert (table.n_molecules, table.n_assays) == (8576, 617)
    assert table.labels.dtype == np.int8 and set(np.unique(table.labels)) == {-1, 0, 1}
    raw = pd.read_csv(TOXCAST, usecols=["ATG_ERE_CIS_up"])["ATG_ERE_CIS_up"]
    col = table.labels[:, table.index("ATG_ERE_CIS_up")]
    assert (col == -1).sum() == raw.isna().sum() and (col == 1).sum() == (raw == 1).sum()


def test_pcba128_loader_reads_the_public_layout(pcba128_file, toxcast_head, monkeypatch):
    table = data.load_pcba128(pcba128_file)
    assert table.assays == ("PCBA-1030", "PCBA-1379", "PCBA-1452", "PCBA-1454", "PCBA-1457")  # mol_id is not an assay
    expected = toxcast_head[ASSAYS[0]].fillna(-1).to_numpy()
    np.testing.assert_array_equal(table.labels[:, 0], expected)
    monkeypatch.setenv("MIXMIN_DATA_DIR", str(pcba128_file.parent.parent))  # resolved through the registry
    assert data.load_pcba128(max_molecules=50).n_molecules == 50


def test_pcba1328_loader_reads_graphium_parquet_head(pcba1328_file):
    table = data.load_pcba1328(pcba1328_file, max_molecules=120)
    assert table.n_molecules == 120 and table.n_assays == 5
    assert all(a.startswith("assayID-") for a in table.assays)  # CID, SID, 'Unnamed: 0' skipped
    assert data.load_pcba1328(pcba1328_file, max_molecules=0).n_molecules == 400


def test_pcba_metadata_joins_by_aid(data_dir):
    meta = data.load_assay_metadata(data_dir / "chem" / "pcba128_assays.csv")
    joined = data.join_metadata(["assayID-1030", "PCBA-1030", "assayID-999999999"], meta)
    assert joined.loc[0, "title"] == joined.loc[1, "title"] == "qHTS Assay for Inhibitors of Aldehyde Dehydrogenase 1 (ALDH1A1)"
    assert joined.loc[0, "category"] == "protein inhibition"
    assert joined.loc[2, "title"] == "assayID-999999999" and joined.loc[2, "category"] == ""


def test_a_pcba_file_of_your_own_gets_pubchem_titles(pcba128_file, pcba1328_file):
    """PCBA-1328 has no download, so a path is the normal way in; its titles were silently dropped."""
    from mixmin_core.chem.experiment import ChemData, load_metadata

    for path, fmt in ((pcba128_file, "pcba128"), (pcba1328_file, "pcba1328")):
        meta = load_metadata(ChemData(dataset="", path=str(path), format=fmt))
        joined = data.join_metadata([f"{'PCBA' if fmt == 'pcba128' else 'assayID'}-1030"], meta)
        assert joined.loc[0, "title"].startswith("qHTS Assay for Inhibitors of Aldehyde Dehydrogenase 1")
    assert load_metadata(ChemData(dataset="", path=str(pcba128_file), format="moleculenet")) is None  # your own assays



def test_a_pcba_file_given_by_path_alone_is_read_in_its_layout(pcba128_file, pcba1328_file, tmp_path):
    """A reviewer's case: `path:` alone read a PCBA file as MoleculeNet's layout: PCBA-128 lost its titles, and a
    Graphium CSV failed on its CID column ("list it in ignore_columns"). The header says which layout it is."""
    from mixmin_core.chem.experiment import ChemData, load_metadata, load_table

    as_csv = tmp_path / "pcba_1328.csv"
    pd.read_parquet(pcba1328_file).to_csv(as_csv, index=False)
    for path, fmt in ((pcba128_file, "pcba128"), (pcba1328_file, "pcba1328"), (as_csv, "pcba1328")):
        given = ChemData(path=str(path))  # dataset left at its default, format at auto
        assert given.table_format == fmt
        assert load_table(given).n_assays == 5
        assert load_metadata(given)["title"].str.startswith("qHTS Assay for Inhibitors of Aldehyde").any()
    variant = tmp_path / "pcba_saved.csv"  # a diff reviewer's: SMILES in capitals, a saved index, a CID column
    pd.read_csv(pcba128_file).rename(columns={"smiles": "SMILES"}).assign(CID=1).to_csv(variant)
    assert ChemData(path=str(variant)).table_format == "pcba128" and load_table(ChemData(path=str(variant))).n_assays == 5
    inchi = tmp_path / "pcba_inchikey.csv"  # an id column of one's own, ignored: read as PCBA-128, with its titles
    pd.read_csv(pcba128_file).assign(inchikey="X").to_csv(inchi, index=False)
    given = ChemData(path=str(inchi), ignore_columns=("mol_id", "inchikey"))
    assert given.table_format == "pcba128" and load_metadata(given) is not None
    own = tmp_path / "own.csv"
    pd.DataFrame({"smiles": ["C", "CC"], "my_assay": [0, 1], "PCBA-1030": [1, 0]}).to_csv(own, index=False)
    assert ChemData(path=str(own)).table_format == "moleculenet"  # a table of one's own with one PCBA assay
    assert load_table(ChemData(path=str(own))).assays == ("my_assay", "PCBA-1030")
    with pytest.raises(InputError, match="/dev/zero: not a regular file"):  # not read: it never ends (a run ran
        _ = ChemData(path="/dev/zero").table_format                         # out of memory)
    with pytest.raises(InputError, match="missing.csv: file not found"):
        _ = ChemData(path=str(tmp_path / "missing.csv")).table_format
    from mixmin_core.runs import datasets

    with datasets.confinement(), pytest.raises(InputError, match="outside"):  # a visitor's job: nothing read outside
        _ = ChemData(path="/etc/hostname").table_format                      # the data directory, not even a header


@pytest.mark.parametrize("name", ["toxcast", "tox21", "muv", "pcba128"])
def test_every_shipped_metadata_file_gives_titles_and_categories(data_dir, name):
    meta = data.load_assay_metadata(data_dir / "chem" / f"{name}_assays.csv")
    assert (meta["title"] != "").all() and (meta["category"] != "").all()
    assert not meta["title"].str.contains("\n").any()


def test_informative_assays_drops_single_class_assays():
    table = data.AssayTable(np.array(["C", "CC", "CCC"], dtype=object),
                            np.array([[1, 0, 1], [0, 0, -1], [-1, 0, 1]], dtype=np.int8), ("a", "b", "c"))
    keep, dropped = data.informative_assays(table)
    assert keep == ["a"] and [d["assay"] for d in dropped] == ["b", "c"]
    assert dropped[0] == {"assay": "b", "n_pos": 0, "n_neg": 3}


# ---- bad input: one clear error naming the problem -------------------------------------------
def test_missing_smiles_column(tmp_path, toxcast_head):
    path = tmp_path / "t.csv"
    toxcast_head.rename(columns={"smiles": "molecule"}).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"t\.csv: no 'smiles' column; found columns \['molecule'"):
        data.load_assay_table(path)


@pytest.mark.parametrize("sep,name", [(";", "semicolons"), ("\t", "tabs")])
def test_a_table_with_another_separator_says_so(tmp_path, toxcast_head, sep, name):
    path = tmp_path / "t.csv"
    toxcast_head.to_csv(path, index=False, sep=sep)
    with pytest.raises(InputError, match=rf"no 'smiles' column; .* The header holds {name}: save the table with commas"):
        data.load_assay_table(path)


@pytest.mark.parametrize("bad", [2, "yes", 0.5])
def test_non_binary_label(tmp_path, toxcast_head, bad):
    frame = toxcast_head.astype(object)
    frame.loc[3, "ATG_ERa_TRANS_up"] = bad
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match=rf"column 'ATG_ERa_TRANS_up' has label values other than 0, 1 or empty, e.g. \['{bad}(\.0)?'\]"):
        data.load_assay_table(path)


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "t.parquet"
    junk.write_bytes(b"\x00not a parquet file")
    with pytest.raises(InputError, match=r"t\.parquet: cannot read the table"):
        data.load_assay_table(junk)
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(b"smiles,a\nC,1\n")[:12])  # truncated gzip
    with pytest.raises(InputError, match=r"t\.csv\.gz: cannot read the table"):
        data.load_assay_table(gz)
    with pytest.raises(InputError, match=r"nothere\.csv: file not found"):
        data.load_assay_table(tmp_path / "nothere.csv")


def test_a_gzip_or_parquet_table_under_another_name_reads_by_its_content(tmp_path, toxcast_head):
    """A gzip file named .csv failed with "UnicodeDecodeError: ... byte 0x8b"."""
    head = toxcast_head[["smiles", *ASSAYS]]
    gz, pq = tmp_path / "assays.csv", tmp_path / "assays.dat"
    gz.write_bytes(gzip.compress(head.to_csv(index=False).encode()))
    head.to_parquet(pq, index=False)
    for path in (gz, pq):
        table = data.load_assay_table(path)
        assert table.assays == tuple(ASSAYS) and table.n_molecules == len(head)


def test_a_plain_csv_under_a_gz_name_reads_and_utf16_is_named(tmp_path, toxcast_head):
    """chemprop's tox21.csv is plain text, and the registry's name for it is tox21.csv.gz: saved under that name it
    failed with "BadGzipFile: Not a gzipped file (b'sm')". A UTF-16 file (Excel's Unicode Text) gave no hint."""
    head = toxcast_head[["smiles", *ASSAYS]]
    plain = tmp_path / "tox21.csv.gz"
    head.to_csv(plain, index=False, compression=None)
    table = data.load_assay_table(plain)
    assert table.assays == tuple(ASSAYS) and table.n_molecules == len(head)
    wide = tmp_path / "utf16.csv"
    wide.write_bytes(head.to_csv(index=False).encode("utf-16"))
    with pytest.raises(InputError, match=r'utf16\.csv: cannot read the table .* It is UTF-16 text .* save it as "CSV UTF-8"'):
        data.load_assay_table(wide)


def test_a_header_of_one_long_name_is_cut_in_the_message(tmp_path, toxcast_head):
    path = tmp_path / "t.csv"
    toxcast_head.to_csv(path, index=False, sep=";")
    with pytest.raises(InputError) as err:
        data.load_assay_table(path)
    assert len(str(err.value)) < 600 and "...'" in str(err.value)  # the 1.5 KB header, cut to 40 characters


def test_a_misspelt_ignored_column_is_an_error(tmp_path, toxcast_head):
    """ignore_columns: [in_stok] left the 0/1 in_stock column in, read as an assay and trained on as a source."""
    path = tmp_path / "t.csv"
    toxcast_head.assign(in_stock=(np.arange(len(toxcast_head)) % 2)).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"ignore_columns names \['in_stok'\], which the table does not have .* read as "
                                         r"an assay"):
        data.load_assay_table(path, ignore_columns=["mol_id", "in_stok"])
    assert "in_stock" not in data.load_assay_table(path, ignore_columns=["in_stock"]).assays  # mol_id may be absent


def test_unknown_assay_is_named(tmp_path, toxcast_head):
    path = tmp_path / "t.csv"
    toxcast_head.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"assay 'ATG_ERE_CIS_dn' does not exist .* Similar names: \['ATG_ERE_CIS_up', "):
        validate(ChemConfig(dataset="", path=str(path), targets=["ATG_ERE_CIS_dn"]))
    with pytest.raises(InputError, match=r"assay 'nope' does not exist"):
        validate(ChemConfig(dataset="", path=str(path), assays=["nope", "ATG_ERE_CIS_up"]))
    with pytest.raises(InputError, match=r"assay 'atg_ere_cis_up' does not exist .* Similar names: \['ATG_ERE_CIS_up'"):
        validate(ChemConfig(dataset="", path=str(path), targets=["atg_ere_cis_up"]))  # (case: difflib suggested none)
    decomposed = tmp_path / "nfd.csv"  # a header saved with "Ö" as O plus a combining mark (as macOS tools may)
    toxcast_head.rename(columns={"ATG_ERE_CIS_up": "O\u0308strogen"}).to_csv(decomposed, index=False)
    with pytest.raises(InputError, match=r"assay 'Östrogen' does not exist .* looks the same but encodes its accented "):
        validate(ChemConfig(dataset="", path=str(decomposed), targets=["\u00d6strogen"]))


def test_target_without_both_classes(tmp_path, toxcast_head):
    frame = toxcast_head.copy()
    frame["flat"] = 0
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"target 'flat' has 0 positives and 400 negatives"):
        make_plan(data.load_assay_table(path), targets=["flat"], n_targets=10, source_counts=["all"],
                  proxy_budgets=[], trials=1)
    with pytest.raises(InputError, match=r"target 'flat' has 0 positives"):  # the CLI's validate says the same
        validate(ChemConfig(dataset="", path=str(path), targets=["flat"], source_counts=["all"]))


def test_target_whose_test_split_would_hold_no_positive_is_refused_before_any_work(tmp_path, toxcast_head):
    """A target with 1-2 actives ran to 'done' with every score blank: round(0.2 x 2) = 0 test positives."""
    frame = toxcast_head.copy()
    for name, n_pos in (("rare2", 2), ("rare3", 3)):
        frame[name] = 0
        frame.loc[frame.index[:n_pos], name] = 1
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"target 'rare2' has 2 positives among the 400 molecules read; with "
                                         r"test_fraction 0.2 its test split gets none"):
        validate(ChemConfig(dataset="", path=str(path), targets=["rare2"], source_counts=["all"]))
    validate(ChemConfig(dataset="", path=str(path), targets=["rare3"], source_counts=["all"]))  # one test positive
    validate(ChemConfig(dataset="", path=str(path), targets=["rare2"], source_counts=["all"], test_fraction=0.3))
    from mixmin_core.chem.workspace import (
        check_target,  # the ladder's and evolve's target check says the same
    )

    table = data.load_assay_table(path)
    with pytest.raises(InputError, match=r"target 'rare2' has 2 positives .* its test split gets none"):
        check_target(table, "rare2", data.informative_assays(table)[0])
    check_target(table, "rare3", data.informative_assays(table)[0])


def test_a_target_with_few_test_positives_is_warned_about(tmp_path, toxcast_head, caplog):
    """MUV targets at 10,000 molecules got one test positive each, and methods were ranked on it without a word."""
    frame = toxcast_head.copy()
    frame["rare"] = 0
    frame.loc[frame.index[:8], "rare"] = 1  # 0.2 x 8: 2 test positives
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with caplog.at_level("WARNING", logger="mixmin.chem"):
        validate(ChemConfig(dataset="", path=str(path), targets=["rare"], source_counts=["all"]))
    assert ("target 'rare': its test split holds about 2 positive(s) among 80 labelled test molecules (chance average "
            "precision 0.025)") in caplog.text  # it said "among the 400 molecules read": the whole table
    caplog.clear()
    with caplog.at_level("WARNING", logger="mixmin.chem"):
        validate(ChemConfig(dataset="", path=str(path), targets=["ATG_PXRE_CIS_up"], source_counts=["all"]))
    assert "positive(s)" not in caplog.text  # 64 positives: about 13 in its test split


def test_a_one_trial_pipelines_few_positives_advice_asks_for_no_intervals(tmp_path, toxcast_head, caplog):
    """chem_evolve and chem_ladder (one trial) were told to "weigh the intervals across trials": they have none."""
    frame = toxcast_head.copy()
    frame["rare"] = 0
    frame.loc[frame.index[:8], "rare"] = 1
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    from mixmin_core.chem.workspace import check_target

    table = data.load_assay_table(path)
    with caplog.at_level("WARNING", logger="mixmin.chem"):
        check_target(table, "rare", data.informative_assays(table)[0])
    assert "about 2 positive(s)" in caplog.text and "this pipeline runs one trial" in caplog.text
    assert "intervals across trials" not in caplog.text


def test_validation_parses_every_molecule_before_any_work(tmp_path, toxcast_head):
    """--dry-run passed a target whose positives were all unparsable SMILES (the run then failed)."""
    frame = toxcast_head.copy()
    frame["lost"] = 0
    frame.loc[frame.index[:6], "lost"] = 1
    frame.loc[frame.index[:6], "smiles"] = [f"XX{i}" for i in range(6)]
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"target 'lost' has 0 positives"):
        validate(ChemConfig(dataset="", path=str(path), targets=["lost"], source_counts=["all"]))
    from jobs.pipelines import chem_evolve, chem_ladder

    # the evolving-sources and ladder pipelines ran to 'done' with every score blank
    parses = r"target 'lost' has 0 positives and \d+ negatives among the 394 molecules RDKit parses \(of 400 read\)"
    with pytest.raises(InputError, match=parses):
        chem_evolve.validate(chem_evolve.ChemEvolveConfig(dataset="", path=str(path), target="lost", initial=2,
                                                          updates=[]))
    with pytest.raises(InputError, match=parses):
        chem_ladder.validate(chem_ladder.ChemLadderConfig(dataset="", path=str(path), targets=["lost"], sources=2))
    frame.loc[frame.index[6], "lost"] = 1  # one parsable positive: a test split with none
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"target 'lost' has 1 positives among the 394 molecules RDKit parses \(of "
                                         r"400 read\); .* Pick another target or raise max_molecules if it caps the table \(0 reads all\)\.$"):
        chem_ladder.validate(chem_ladder.ChemLadderConfig(dataset="", path=str(path), targets=["lost"], sources=2))
    frame.loc[frame.index[6:12], "lost"] = 1  # six parsable positives: a test split with one
    frame.to_csv(path, index=False)
    chem_evolve.validate(chem_evolve.ChemEvolveConfig(dataset="", path=str(path), target="lost", initial=2, updates=[]))
    chem_ladder.validate(chem_ladder.ChemLadderConfig(dataset="", path=str(path), targets=["lost"], sources=2))


def test_one_molecule_written_two_ways_is_found():
    """OCC beside C(O)C passed as two molecules (only exact repeats were caught); the run now warns about them.
    Not refused: ClinTox, a shipped table, has such pairs."""
    from mixmin_core.chem.fingerprints import featurize_smiles, same_molecule_rows

    smiles = ["CCN", "OCC", "c1ccccc1", "C(O)C", "CC(=O)O", "not a smiles", "CCO"]
    fps = featurize_smiles(smiles)
    assert same_molecule_rows(smiles, fps.matrix, fps.valid) == [(1, 3), (1, 6)]


def test_different_molecules_with_one_fingerprint_are_found():
    """Two enantiomers passed without a word (the fingerprint has no chirality): the models see one molecule, and
    the splits may put them on both sides."""
    from mixmin_core.chem.fingerprints import featurize_smiles, fingerprint_twins

    smiles = ["C[C@H](N)O", "CCO", "C[C@@H](N)O", "OCC", "CC(N)O"]
    fps = featurize_smiles(smiles)
    assert fingerprint_twins(smiles, fps.matrix, fps.valid) == [(0, 2), (0, 4)]  # OCC is CCO itself: no twin


def test_a_molecule_on_two_rows_is_refused(tmp_path, toxcast_head):
    frame = toxcast_head.copy()
    frame = pd.concat([frame, frame.iloc[:5]], ignore_index=True)  # five molecules repeated
    path = tmp_path / "dup.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"dup.csv: 5 SMILES appear on more than one row .* one row per molecule"):
        data.load_assay_table(path)


def test_metadata_without_task_column(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("name,title\nx,y\n")
    with pytest.raises(InputError, match=r"m\.csv: assay metadata needs a 'task'"):
        data.load_assay_metadata(path)


def test_a_repeated_assay_column_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("smiles,A,A\nCCO,1,0\nCCC,0,1\n")
    with pytest.raises(InputError, match=r"dup.csv: column names must be unique; repeated: \['A'\]"):
        data.load_assay_table(path)  # pandas would have renamed the second one A.1


@pytest.mark.parametrize(("header", "match"), [
    (b'smiles,"a\nimport os",B', r"assay columns: names must not hold line breaks or control characters; got 'a\\nimport os'"),
    (b"smiles,=HYPERLINK(1),B", r"assay columns: names must not start with =, \+, -, @ .*got '=HYPERLINK\(1\)'"),
    # as a spreadsheet reads them: after spaces, and a full-width equals sign
    (b'smiles," =cmd|x",B', r"assay columns: names must not start with =, \+, -, @ .*got ' =cmd\|x'"),
    ("smiles,\uff1d1+1,B".encode(), r"assay columns: names must not start with =, \+, -, @ .*got '\uff1d1\+1'"),
    # PPAR\u03b3 and PPAR\u03b4 both became PPAR- in file names: one target's mixtures overwrote the other's
    ("smiles,PPAR\u03b3,PPAR\u03b4".encode(), r"'PPAR\u03b3' and 'PPAR\u03b4' would share files \('PPAR-'"),
    (b"smiles,overall,B", r"'overall' is the name the reports give the mean over targets"),
    (b"smiles,a__b,B", r"'a__b' holds '__', which separates the parts"),  # read back as target a, setting b
    (b"smiles,T,T@train", r"assay column 'T@train' ends in '@train', which names a target's own training rows"),
    # accepted: another assay than a config's ATG_X (and other splits, seeded by the name)
    (b"smiles, ATG_X,B", r"assay column name\(s\) \[' ATG_X'\] begin or end with spaces; remove the spaces"),
    (b" smiles ,A,B", r"no 'smiles' column.*The header has ' smiles ': remove the spaces around its name"),
])
def test_assay_names_that_would_break_an_export_or_a_spreadsheet_are_refused(tmp_path, header, match):
    """They become source names: the run failed on them only after its proxies were trained."""
    path = tmp_path / "t.csv"
    path.write_bytes(header + b"\nCCO,1,0\nCCC,0,1\n")
    with pytest.raises(InputError, match=match):
        data.load_assay_table(path)


def test_a_header_without_molecules_and_odd_arguments(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("smiles,A,B\n")
    with pytest.raises(InputError, match="empty.csv: the table has a header but no molecules"):
        data.load_assay_table(path)
    with pytest.raises(InputError, match="max_molecules must be a non-negative integer; got -1"):
        data.load_assay_table(TOXCAST, max_molecules=-1)
    one = data.load_assay_table(TOXCAST, ignore_columns="mol_id", max_molecules=20)  # one name, not 'm','o',...
    assert one.labels.shape[0] == 20


def test_every_non_assay_column_is_named_in_one_error(tmp_path, toxcast_head):
    """compound_id, then plate, then mw_est were refused one at a time, a fix and a rerun each."""
    path = tmp_path / "t.csv"
    toxcast_head.assign(compound_id=[f"C{i}" for i in range(len(toxcast_head))], plate=3,
                        mw_est=250.5).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"3 column\(s\) have label values other than 0, 1 or empty: 'compound_id': "
                                         r".*; 'plate': e.g. \['3'\] \(400 cells\); 'mw_est': .* list them in "
                                         r"ignore_columns \(e.g. ignore_columns: \['compound_id', 'plate', 'mw_est'\]\)"):
        data.load_assay_table(path)
    # the columns already ignored stay in the list it suggests (following it dropped the default mol_id, then
    # mol_id was refused as an assay)
    toxcast_head.assign(mol_id=[f"M{i}" for i in range(len(toxcast_head))], plate=3,
                        mw_est=250.5).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"\(e.g. ignore_columns: \['mol_id', 'plate', 'mw_est'\]\)"):
        data.load_assay_table(path)
    assert data.load_assay_table(path, ignore_columns=["mol_id", "plate", "mw_est"]).labels.shape[0] == len(toxcast_head)


def test_a_registered_table_given_as_metadata_asks_for_its_metadata(data_dir):
    """`metadata: toxcast` read ToxCast's label table and failed listing its columns."""
    from mixmin_core.chem.experiment import ChemData, load_metadata

    with pytest.raises(InputError, match=r"metadata: 'toxcast' is a registered assay table, not assay metadata; did "
                                         r"you mean toxcast_assays\?"):
        load_metadata(ChemData(metadata="toxcast"))
    assert load_metadata(ChemData(metadata="toxcast_assays")) is not None
    with pytest.raises(InputError, match=r"found 618 columns, \['smiles', .*\]\.\.\."):  # a file by path: cut short
        data.load_assay_metadata(data_dir / "chem" / "toxcast.csv.gz")
