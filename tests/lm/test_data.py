"""Text sources and targets: real files from MIXMIN_DATA_DIR, small files written here for errors."""
import gzip
import json

import numpy as np
import pytest

from mixmin_core.errors import InputError, MixminError
from mixmin_core.lm import data


def _write(path, records, gz=False):
    lines = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(lines)
    else:
        path.write_text(lines, encoding="utf-8")
    return path


def test_real_sources_folder(data_dir):
    files = data.find_source_files(data_dir / "text" / "source")
    assert sorted(files) == ["arxiv", "book", "c4", "commoncrawl", "github", "stackexchange", "wikipedia"]
    texts = data.read_texts(files["c4"], limit=5)
    assert len(texts) == 5 and all(isinstance(t, str) and t for t in texts)


@pytest.mark.parametrize("kind, name, n_choices", [
    ("piqa", "piqa_validation", 2), ("arc_easy", "arc_easy_test", None), ("sciq", "sciq_test", 4)])
def test_real_targets_keep_choices(data_dir, kind, name, n_choices):
    examples = data.load_target(kind, data_dir / "text" / "target" / f"{name}.jsonl.gz", limit=50)
    assert len(examples) == 50
    for e in examples:
        assert e.is_choice and e.choices[e.label] == e.answer and e.text == f"{e.prefix} {e.answer}"
        assert n_choices is None or len(e.choices) == n_choices
    if kind == "sciq":  # correct answers are not always first (deterministic shuffle)
        labels = [e.label for e in examples]
        assert len(set(labels)) > 1
        assert labels == [e.label for e in data.load_target(kind, data_dir / "text" / "target" / f"{name}.jsonl.gz", limit=50)]


def test_sciq_lists_each_answer_once(data_dir):
    """Two SciQ test items listed the correct answer twice (as a distractor too): the first copy wins a tie, so every
    method scored them wrong. A repeated distractor is dropped."""
    examples = data.load_target("sciq", data_dir / "text" / "target" / "sciq_test.jsonl.gz")
    assert all(len(set(e.choices)) == len(e.choices) and e.choices[e.label] == e.answer for e in examples)
    assert sum(len(e.choices) < 4 for e in examples) >= 2


def test_piqa_text_matches_the_files_text_field(data_dir):
    path = data_dir / "text" / "target" / "piqa_validation.jsonl.gz"
    recs = data.read_jsonl(path, limit=20)
    assert [e.text for e in data.load_target("piqa", path, limit=20)] == [r["text"] for r in recs]


def test_openwebmath_and_user_jsonl(tmp_path):
    owm = _write(tmp_path / "owm.jsonl.gz", [
        {"text": "Let $x^2 = 4$. Then $x = \u00b12$.", "url": "https://a", "date": "2023", "metadata": "{}"},
        {"text": "", "url": "https://b", "date": "2023", "metadata": "{}"}], gz=True)
    (doc,) = data.load_target("openwebmath", owm)
    assert not doc.is_choice and doc.prefix == "" and doc.sample_id == "https://a"
    (a,) = data.load_target("jsonl", _write(tmp_path / "mine.jsonl", [{"text": "plain doc"}]))
    (b,) = data.load_target("jsonl", _write(tmp_path / "mine_mc.jsonl",
                                            [{"question": "2+2?", "choices": ["3", "4"], "label": 1}]))
    assert a.text == "plain doc" and not a.is_choice
    assert b.is_choice and b.answer == "4" and b.text == "2+2? 4"


def test_slimpajama_schema_groups_by_set(tmp_path):
    shard = _write(tmp_path / "shard.jsonl", [
        {"text": "a web page", "meta": {"redpajama_set_name": "RedPajamaCommonCrawl"}},
        {"text": "def f(): pass", "meta": {"redpajama_set_name": "RedPajamaGithub"}},
        {"text": "another page", "meta": {"redpajama_set_name": "RedPajamaCommonCrawl"}}])
    groups = data.read_slimpajama([shard])
    assert groups == {"RedPajamaCommonCrawl": ["a web page", "another page"], "RedPajamaGithub": ["def f(): pass"]}
    folder = tmp_path / "folder"
    data.write_slimpajama_folder(groups, folder)
    assert data.read_texts(data.find_source_files(folder)["RedPajamaGithub"]) == ["def f(): pass"]
    bad = _write(tmp_path / "bad.jsonl", [{"text": "x", "meta": {}}])
    with pytest.raises(InputError, match=r"bad.jsonl: line 1 is not a SlimPajama record"):
        data.read_slimpajama([bad])


def test_split_is_seeded_disjoint_and_80_20():
    fit, test = data.split_indices(100, seed=0, trial=1)
    assert fit.size == 80 and test.size == 20 and not set(fit) & set(test)
    again, _ = data.split_indices(100, seed=0, trial=1)
    other, _ = data.split_indices(100, seed=0, trial=2)
    assert np.array_equal(fit, again) and not np.array_equal(fit, other)


def test_error_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope.jsonl: file not found"):
        data.read_texts(tmp_path / "nope.jsonl")


def test_error_invalid_json_line(tmp_path):
    path = _write(tmp_path / "broken.jsonl", [{"text": "ok"}, "{not json"])
    with pytest.raises(InputError, match=r"broken.jsonl: line 2 is not valid JSON"):
        data.read_texts(path)


def test_error_not_gzip(tmp_path):
    path = tmp_path / "fake.jsonl.gz"
    path.write_text('{"text": "x"}\n')
    with pytest.raises(InputError, match=r"fake.jsonl.gz: cannot read as gzip"):
        data.read_texts(path)


def test_error_record_without_text(tmp_path):
    path = _write(tmp_path / "notext.jsonl", [{"text": "fine"}, {"body": "no text field"}])
    with pytest.raises(InputError, match=r"notext.jsonl: line 2 has no field 'text' \(fields: \['body'\]\)"):
        data.read_texts(path)
    for value, kind in ((5, "int"), (None, "null"), (["a"], "list")):  # it said "has no string field" of a number
        path = _write(tmp_path / "number.jsonl", [{"text": value}])
        with pytest.raises(InputError, match=rf"number.jsonl: line 1 holds {kind} as 'text', not text; every record needs"):
            data.read_texts(path)


def test_error_empty_domain(tmp_path):
    path = _write(tmp_path / "empty.jsonl", [{"text": ""}, {"text": "   "}])
    with pytest.raises(InputError, match=r"empty.jsonl: no non-empty 'text' records"):
        data.read_texts(path)


def test_error_folder_needs_two_sources(tmp_path):
    _write(tmp_path / "only.jsonl", [{"text": "x"}])
    with pytest.raises(InputError, match=r"holds 1 source file\(s\)"):
        data.find_source_files(tmp_path)
    with pytest.raises(InputError, match=r"sources folder .* not found"):
        data.find_source_files(tmp_path / "missing")
    with pytest.raises(InputError, match=r"sources \['web'\] not found"):
        data.find_source_files(tmp_path, names=["web"])
    _write(tmp_path / "a.jsonl", [{"text": "x"}])
    _write(tmp_path / "b.jsonl", [{"text": "y"}])
    with pytest.raises(InputError, match=r"sources \['a'\] picks 1 of the 3 source files in .*; mixing needs at least two"):
        data.find_source_files(tmp_path, names=["a"])  # it said the folder held 1 source file


def test_files_that_are_no_source_are_named_and_capitals_or_gzip_content_are_read(tmp_path, caplog):
    """foreign.json and Web.JSONL were dropped without a word."""
    import gzip

    _write(tmp_path / "Web.JSONL", [{"text": "x"}])
    _write(tmp_path / "foreign.json", [{"text": "y"}])
    (tmp_path / ".DS_Store").write_bytes(b"")
    with pytest.raises(InputError, match=r"holds 1 source file\(s\); .* \(left out: foreign.json\)"):
        data.find_source_files(tmp_path)
    (tmp_path / "books.jsonl").write_bytes(gzip.compress(b'{"text": "z"}\n'))  # gzip without .gz
    with caplog.at_level("WARNING", logger="mixmin.lm.data"):
        files = data.find_source_files(tmp_path)
    assert list(files) == ["Web", "books"] and data.read_texts(files["books"]) == ["z"]
    assert "1 entry is not a <source>.jsonl(.gz) file and left out: foreign.json" in caplog.text


def test_error_a_source_in_two_files(tmp_path):
    """a.jsonl beside a.jsonl.gz: the .jsonl was silently ignored."""
    import gzip

    _write(tmp_path / "a.jsonl", [{"text": "x"}])
    _write(tmp_path / "b.jsonl", [{"text": "y"}])
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as fh:
        fh.write('{"text": "z"}\n')
    with pytest.raises(InputError, match=r"a.jsonl and a.jsonl.gz are both source 'a'; keep one of them"):
        data.find_source_files(tmp_path)


def test_error_a_lone_surrogate_or_a_non_utf8_byte_names_its_line(tmp_path):
    """A lone surrogate passed --dry-run and failed the run in the tokenizer's training; a bad byte was placed
    by its offset in a read buffer (position 8,080 for a byte 98,192 bytes in)."""
    good = '{"text": "a pair \\ud83d\\ude00 is fine"}\n'
    (tmp_path / "s.jsonl").write_text(good + '{"text": "half \\ud83d of an emoji"}\n')
    with pytest.raises(InputError, match=r"s.jsonl: line 2 holds a lone UTF-16 surrogate \('\\ud83d'"):
        list(data.iter_jsonl(tmp_path / "s.jsonl"))
    (tmp_path / "b.jsonl").write_bytes(good.encode() * 3000 + b'{"text": "bad \xff"}\n')
    with pytest.raises(InputError, match=r"b.jsonl: line 3001 is not UTF-8 \(invalid start byte: byte b'\\xff' at byte 15"):
        list(data.iter_jsonl(tmp_path / "b.jsonl"))
    assert next(data.iter_jsonl(tmp_path / "s.jsonl"))[1]["text"] == "a pair \U0001f600 is fine"


@pytest.mark.parametrize(("names", "match"), [
    (["my target", "my-target"], r"'my target' and 'my-target' would share files"),  # they shared every result
    (["overall", "mcq"], r"'overall' is the name the reports give the mean over targets"),
    (["my__docs", "mcq"], r"'my__docs' holds '__'"),
])
def test_error_target_names_that_would_not_get_files_of_their_own(names, match):
    from mixmin_core.lm.experiment import check_target_specs

    with pytest.raises(MixminError, match=match):
        check_target_specs([{"name": n, "kind": "jsonl", "path": "t.jsonl"} for n in names])


@pytest.mark.parametrize("limit", [0, -5, 2.5, True])
def test_error_a_target_max_samples_that_is_no_count(limit):
    """-5 failed late as "limit must be a non-negative integer", naming neither target nor key; 0 meant the default."""
    from mixmin_core.lm.experiment import check_target_specs

    with pytest.raises(MixminError, match=r"targets\[0\].max_samples: must be a whole number >= 1"):
        check_target_specs([{"name": "a", "kind": "jsonl", "path": "t.jsonl", "max_samples": limit}])


def test_error_a_source_file_name_a_spreadsheet_would_run(tmp_path):
    _write(tmp_path / "@SUM(1).jsonl", [{"text": "x"}])
    _write(tmp_path / "b.jsonl", [{"text": "y"}])
    with pytest.raises(InputError, match=r"file names: names must not start with =, \+, -, @ .*got '@SUM\(1\)'"):
        data.find_source_files(tmp_path)


def test_error_a_target_mixing_documents_and_questions(tmp_path):
    """The first record decided how the whole target was scored; an empty file said 'no record has an answer'."""
    path = _write(tmp_path / "mixed.jsonl", [{"text": "a document"},
                                             {"question": "q?", "choices": ["a", "b"], "label": 0}])
    with pytest.raises(InputError, match=r"mixed.jsonl: line 2 is a multiple-choice question, but the records before "
                                         r"it are documents"):
        data.load_target("jsonl", path)
    empty = _write(tmp_path / "empty.jsonl", [])
    with pytest.raises(InputError, match=r"empty.jsonl: the file holds no records"):
        data.load_target("jsonl", empty)


def test_error_target_without_answers(data_dir):
    path = data_dir / "text" / "target" / "piqa_test_unlabeled.jsonl.gz"
    with pytest.raises(InputError, match=r"piqa_test_unlabeled.jsonl.gz: no record of target kind 'piqa' can be scored \(\d+ without an answer"):
        data.load_target("piqa", path)


def test_error_target_missing_fields(tmp_path):
    path = _write(tmp_path / "arc.jsonl", [{"question": "q?"}])
    with pytest.raises(InputError, match=r"arc.jsonl: line 1 lacks field\(s\) \['choices'\]"):
        data.load_target("arc_easy", path)
    with pytest.raises(InputError, match=r"target kind must be one of"):
        data.load_target("mmlu", path)


def test_error_zstd_shard(tmp_path):
    path = tmp_path / "example_train_0.jsonl.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(InputError, match=r"example_train_0.jsonl.zst: zstd-compressed .*\(zstd -d"):
        data.read_slimpajama([path])


def test_openwebmath_not_available_offline_says_where_to_put_it(monkeypatch, tmp_path):
    from mixmin_core.runs.datasets import resolve

    monkeypatch.setenv("MIXMIN_OFFLINE", "1")
    with pytest.raises(InputError, match=r"text/openwebmath.*Put the file at .*text/target/openwebmath.jsonl.gz"):
        resolve("text/openwebmath")


PIQA = {"goal": "g", "sol1": "a", "sol2": "b"}


@pytest.mark.parametrize("kind,record,match", [
    ("piqa", dict(PIQA, label=1.0), r"line 1: field 'label' must be the correct choice's index, an integer in 0..1"),
    ("piqa", dict(PIQA, label="1"), r"field 'label' must be .*; got '1'"),
    ("piqa", dict(PIQA, sol1=None, label=0), r"line 1: field 'sol1' must be a string for target kind 'piqa'; got None"),
    ("arc_easy", {"question": "q", "choices": "abcd", "label": 0}, r"field 'choices' must be a list of at least two"),
    ("arc_easy", {"question": "q", "choices": ["x", "y"], "label": 5}, r"an integer in 0..1 .*; got 5"),
    # accepted silently: an item whose answer is also a distractor is always scored wrong (a reviewer's file)
    ("jsonl", {"question": "q", "choices": ["x", "y", "x"], "label": 0}, r"line 1: 'x' is two of the choices"),
    ("jsonl", {"question": "q", "choices": ["x", "  "], "label": 0}, r"line 1: choice 1 is blank; each choice must be"),
    ("sciq", {"question": None, "correct_answer": "x"}, r"field 'question' must be a string"),
    ("sciq", {"question": "q", "correct_answer": 5}, r"field 'correct_answer' must be a string .*; got 5"),
])
def test_a_field_of_the_wrong_type_is_named_with_its_line(tmp_path, kind, record, match):
    path = _write(tmp_path / "t.jsonl", [record])
    with pytest.raises(InputError, match=match):
        data.load_target(kind, path)


def test_arc_in_hugging_faces_layout(tmp_path):
    path = _write(tmp_path / "arc.jsonl", [{"id": "q1", "question": "q", "answerKey": "B",
                                            "choices": {"text": ["x", "y", "z"], "label": ["A", "B", "C"]}}])
    (example,) = data.load_target("arc_easy", path)
    assert (example.answer, example.label, example.choices, example.sample_id) == ("y", 1, ("x", "y", "z"), "q1")
    with pytest.raises(InputError, match=r"arc.jsonl: line 1 reads as a multiple-choice question, which needs .*"
                                         r"Hugging Face's ARC layout: use kind: arc_easy"):
        data.load_target("jsonl", path)  # it said the record lacked 'text'
    nolabel = _write(tmp_path / "q.jsonl", [{"question": "q", "choices": ["x", "y"], "answer": 1}])
    with pytest.raises(InputError, match=r"q.jsonl: line 1 reads as a multiple-choice question, which needs "
                                         r"'question', 'choices' and 'label' \(the correct choice's index\); it has"):
        data.load_target("jsonl", nolabel)
    numbered = _write(tmp_path / "n.jsonl", [{"id": "q2", "question": "q", "answerKey": 2,
                                              "choices": {"text": ["x", "y"], "label": ["1", "2"]}}])
    assert data.load_target("arc_easy", numbered)[0].label == 1  # an int key names the label "2"
    bad = _write(tmp_path / "bad.jsonl", [{"id": "q1", "question": "q", "answerKey": "Z",
                                           "choices": {"text": ["x", "y"], "label": ["A", "B"]}}])
    with pytest.raises(InputError, match=r"bad.jsonl: line 1: 'answerKey' 'Z' is not one of the choices' labels \['A', 'B'\]"):
        data.load_target("arc_easy", bad)  # it was dropped as a record "without an answer"


def test_limit_zero_reads_nothing_and_a_negative_limit_is_refused(tmp_path):
    path = _write(tmp_path / "t.jsonl", [{"text": "one"}, {"text": "two"}])
    assert data.read_texts(path, limit=0) == [] and data.read_jsonl(path, limit=0) == []
    assert data.load_target("jsonl", path, limit=0) == []
    assert data.read_texts(path, limit=1) == ["one"]
    with pytest.raises(InputError, match="limit must be a non-negative integer; got -1"):
        data.read_jsonl(path, limit=-1)


def test_a_byte_order_mark_and_odd_arguments(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes("\ufeff".encode() + b'{"text": "first"}\n{"text": "second"}\n')  # some editors write one
    assert data.read_texts(path) == ["first", "second"]
    folder = tmp_path / "sources"
    folder.mkdir()
    for name in ("c4", "wiki"):
        _write(folder / f"{name}.jsonl", [{"text": name}])
    with pytest.raises(InputError, match="names must be a list of names, one per source; got 'c4'"):
        data.find_source_files(folder, names="c4")  # it looked for sources 'c' and '4'
    with pytest.raises(InputError, match="need at least 2 examples"):
        data.split_indices(1, seed=0, trial=0)
    with pytest.raises(InputError, match="fit_fraction must lie strictly between 0 and 1; got 2"):
        data.split_indices(10, seed=0, trial=0, fit_fraction=2)


def test_a_capped_source_is_read_only_to_its_cap_and_counted_whole(tmp_path):
    """max_source_chars reads the first characters only (a broken line further on is not reached), while
    tokenize_source records the whole source's documents and characters for its size."""
    from mixmin_core.lm.experiment import capped_texts, corpus_counts, source_sizes

    path = tmp_path / "src.jsonl"
    path.write_text("".join(json.dumps({"text": "a" * 600}) + "\n" for _ in range(3)) + "{broken\n")
    assert capped_texts(str(path), 1000) == ["a" * 600, "a" * 400]
    with pytest.raises(InputError, match="line 4 is not valid JSON"):
        corpus_counts(str(path))
    path.write_text("".join(json.dumps({"text": "a" * 600}) + "\n" for _ in range(3)) + '{"text": " "}\n')
    assert corpus_counts(str(path)) == (3, 1800)  # blank documents are not documents
    frame = source_sizes(["s", "t"], [
        {"tokens": 100, "documents": 2, "sample_chars": 1000, "corpus_documents": 3, "corpus_chars": 1800},
        {"tokens": 300, "documents": 1, "sample_chars": 1000, "corpus_documents": 1, "corpus_chars": 1000}])
    assert frame.corpus_tokens.tolist() == [180, 300] and frame.documents.tolist() == [2, 1]
    np.testing.assert_allclose(frame.natural_weight, [180 / 480, 300 / 480])  # the corpus's shares
    old = source_sizes(["s", "t"], [{"tokens": 100}, {"tokens": 300}])  # a run from before documents were kept
    assert list(old.columns) == ["source", "title", "category", "tokens", "natural_weight"]
    np.testing.assert_allclose(old.natural_weight, [0.25, 0.75])


def test_target_examples_a_source_holds_are_found_by_word_runs():
    from mixmin_core.lm.overlap import examples_in

    question = "Which of these would let the most heat travel through a metal spoon or a wooden one"
    targets = {"arc": [question, "A short one.", "Something no source says about photosynthesis in leaves at night"],
               "docs": ["the cat sat on the mat and looked at the dog who sat by the door all day long"]}
    source = [f"Q: {question.upper()}? A: a metal spoon.",  # case and punctuation do not hide it
              "The cat sat on the mat and looked at the dog, who sat by the door all day",  # 17 words of 18 in a row
              "A short one."]  # too short to say anything
    assert examples_in(source, targets) == {"arc": [0], "docs": [0]}
    assert examples_in(["the cat sat on the mat and looked at the dog"], targets) == {"arc": [], "docs": []}


def test_sources_holding_the_same_documents_are_paired_by_one_sort(tmp_path):
    from mixmin_core.lm.overlap import document_hashes, shared_documents

    def hashes(name, texts):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        document_hashes(path=str(path), max_chars=0, output=str(tmp_path / f"{name}.npy"))
        return np.load(tmp_path / f"{name}.npy")

    docs = [f"document number {i} about things" for i in range(200)]
    found = {"web": hashes("web", docs + docs[:5]),  # a repeated document counts once
             "subset": hashes("subset", [d.upper().replace(" ", "  ") for d in docs[:150]]),  # case, spacing ignored
             "other": hashes("other", [f"unrelated text {i}" for i in range(99)] + docs[:1]),  # 1% of the smaller
             "tiny": hashes("tiny", [f"tiny {i}" for i in range(300)] + docs[199:])}  # 1 of 200: under 1%
    assert found["web"].dtype == np.uint64 and found["web"].size == 200 and np.all(np.diff(found["web"]) > 0)
    assert shared_documents(found) == [{"sources": ["web", "subset"], "shared": 150, "documents": [200, 150]},
                                       {"sources": ["web", "other"], "shared": 1, "documents": [200, 100]},
                                       {"sources": ["subset", "other"], "shared": 1, "documents": [150, 100]}]
    assert shared_documents({"a": found["web"]}) == [] and shared_documents({}) == []
    blank = [hashes(n, ["  ", "\t\n ", "word"]) for n in ("b1", "b2")]  # blank documents are nobody's copy
    assert blank[0].size == 1 and shared_documents({"b1": blank[0], "b2": blank[1]})[0]["shared"] == 1
