"""Dataset registry: each dataset's public home, checksum and where to find a local copy.

Resolution order for :func:`resolve`: an explicit path, then ``$MIXMIN_DATA_DIR/<relpath>``
(default: ``../shared/data`` beside the checkout, when present),
then the local cache (``$MIXMIN_CACHE``, default ``~/.cache/mixmin``), then a download from the
public home (with a progress bar and checksum check), else an error saying where to put the file.
Offline development and CI use ``MIXMIN_DATA_DIR=../shared/data``.
"""
from __future__ import annotations

import contextlib
import contextvars
import http.client
import logging
import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from mixmin_core.errors import InputError
from mixmin_core.runs import fileio

log = logging.getLogger(__name__)

_CHEMPROP = "https://raw.githubusercontent.com/chemprop/chemprop/b83635bcddaddcdb91d453128edec9f2be0d25cf/data/"
_DEEPCHEM = "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/"


@dataclass(frozen=True)
class Dataset:
    """A registered file: ``relpath`` under ``MIXMIN_DATA_DIR``, its ``url`` (None: no public
    direct download) and ``sha256`` of that download (None: not pinned), and a description."""

    name: str
    relpath: str
    url: str | None
    sha256: str | None
    description: str
    parser: str = ""  # dotted path of the loader that reads it


REGISTRY: dict[str, Dataset] = {}


def register(ds: Dataset) -> Dataset:
    REGISTRY[ds.name] = ds
    return ds


for _name, _file, _sha, _desc in [
    ("toxcast", "toxcast.csv.gz", "4b9b4366b02ce7ec7a0831d60f8c46f153c53c5e122376df887476240496abd4", "ToxCast, 8,576 molecules x 617 assays (MoleculeNet layout)"),
    ("muv", "muv.csv.gz", "ee68d1fad0b10440dc494ac3a74cf99168a0b0da9683556b2b48220b88172135", "MUV, 93,087 molecules x 17 assays"),
]:
    register(Dataset(_name, f"chem/{_file}", _CHEMPROP + _file, _sha, _desc, "mixmin_core.chem.data.load_assay_table"))
for _name, _file, _desc in [
    ("tox21", "tox21.csv.gz", "Tox21, 7,831 molecules x 12 assays"),
    ("sider", "sider.csv.gz", "SIDER, 1,427 molecules x 27 side-effect classes (CC BY-NC-SA)"),
    ("clintox", "clintox.csv.gz", "ClinTox, 1,478 molecules x 2 tasks"),
]:
    register(Dataset(_name, f"chem/{_file}", _DEEPCHEM + _file, None, _desc, "mixmin_core.chem.data.load_assay_table"))
register(Dataset("pcba128", "chem/pcba.csv.gz", _DEEPCHEM + "pcba.csv.gz", None,
                 "MoleculeNet PCBA-128: 437,929 molecules x 128 assays (columns PCBA-<AID>, mol_id, smiles)",
                 "mixmin_core.chem.data.load_pcba128"))
register(Dataset("pcba1328", "chem/pcba_1328_1564k.parquet", None, None,
                 "Graphium PCBA-1328 (1,328 assays, 1.56M molecules); get it from the Polaris hub "
                 "(graphium/pcba-1328-1564k-v1) and place the Parquet/CSV here", "mixmin_core.chem.data.load_pcba1328"))
for _name, _file, _sha in [
    ("toxcast_assays", "toxcast_assays.csv", "8b0e2e389c373c28ea42e1613fe5fd71b2107087937d324223586e5a89dc6e6a"),
    ("tox21_assays", "tox21_assays.csv", "5ad963271763eb304ea678f1361981ad88bd1a731cda17b9fbc52ff495836de3"),
    ("muv_assays", "muv_assays.csv", "450a1798b2b4309d2bba9bd6e07e8c559834213411957098948ea892aad6bdd7"),
    ("pcba128_assays", "pcba128_assays.csv", "745b7836f8ac8ee996664d362217491cfa64efaa6df7a2f87d1eb2132e9fc74e"),
]:
    register(Dataset(_name, f"chem/{_file}", None, _sha, f"assay metadata (title, category) for {_name.split('_')[0]}",
                     "mixmin_core.chem.data.load_assay_metadata"))
for _name, _sha in [
    ("commoncrawl", "4c41ceae1835d9dc951f1d64d6a72d58df1d0c1a9f2115ff1ae57d155f55eeef"),
    ("c4", "a6e1f2b62c45b714bf88012160412ebba88ec35acca9bced5ce62fd417f7b22a"),
    ("github", "29f9a3d9e84ff57c138de21a2ba260b94fb79d2d84af028692aa87e358620447"),
    ("book", "3587ac4e60053b976a9c63863ee65618e9e9c5de49b7b58018cb776de8b2ec3a"),
    ("arxiv", "6e38a49e41fdfbbed9c75be2005f524f8fc7d343d26d41b95f3adf71a40f66ed"),
    ("wikipedia", "76018184439af7e0435a5da0dae07f0d627ea1e63f28de12735f122d82ebfe61"),
    ("stackexchange", "7ed6a451b51bd2fc5647c8dc1676f584c93c2c3181c9b74a427d0124562ac77b"),
]:
    register(Dataset(f"text/{_name}", f"text/source/{_name}.jsonl.gz", None, _sha,
                     f"text source domain '{_name}' (jsonl.gz with a 'text' field; SlimPajama stand-in)",
                     "mixmin_core.lm.data.iter_texts"))
for _name, _sha in [
    ("piqa_train", "9a474f5b0354d33b5c407a14a0b7b671d3e41eba7d82ae2d5004251e4b87f3bb"),
    ("piqa_validation", "81bcf133d4800e77c03dface629fe54a40eb1ccbbfc112fc75ae3fb100b1f02e"),
    ("arc_easy_train", "9ab70ee0eb7182cf1ce98afbd85d17ae2663597630589113020d0519211bf6d6"),
    ("arc_easy_validation", "ebf80aa7ef45d6998d1ab1e79f2e8ddf2811040c0680eb404f02a5b63f5d985a"),
    ("arc_easy_test", "c4a7cef24ea73bb52a1fd5a1e987e846c1c4295d6eb96481da696da977eb41c3"),
    ("sciq_validation", "433b3d1c3cfdf4732c843d2ab5e969888ebfaa29221f446c0388b14e9ca01087"),
    ("sciq_test", "de2c7edd7755d8b4d8f655873a797325eacc35ea8d26dc5895e92563e08e76fa"),
]:
    register(Dataset(f"text/{_name}", f"text/target/{_name}.jsonl.gz", None, _sha,
                     f"target task split '{_name}' (question + answer text, choices kept)",
                     "mixmin_core.lm.data.load_target"))
register(Dataset("text/openwebmath", "text/target/openwebmath.jsonl.gz", None, None,
                 "OpenWebMath documents (fields text, url, date, metadata; the paper uses the first 10,000); "
                 "export them from the Hugging Face dataset open-web-math/open-web-math as JSON Lines",
                 "mixmin_core.lm.data.load_target"))
register(Dataset("pythia_tokenizer", "text/tokenizer/gpt-neox-20b/tokenizer.json",
                 "https://huggingface.co/EleutherAI/pythia-160m/resolve/main/tokenizer.json", None,
                 "GPT-NeoX-20B / Pythia tokenizer", "tokenizers.Tokenizer.from_file"))
for _name, _rel in [
    ("regmix_train_mixture_1m", "regmix/train_mixture_1m.csv"), ("regmix_train_loss_1m", "regmix/train_pile_loss_1m.csv"),
    ("regmix_test_mixture_1m", "regmix/test_mixture_1m.csv"), ("regmix_test_loss_1m", "regmix/test_pile_loss_1m.csv"),
    ("regmix_test_mixture_60m", "regmix/test_mixture_60m.csv"), ("regmix_test_loss_60m", "regmix/test_pile_loss_60m.csv"),
    ("regmix_test_mixture_1b", "regmix/test_mixture_1B.csv"), ("regmix_test_loss_1b", "regmix/test_pile_loss_1B.csv"),
    ("olmix_dclm_ratios", "olmix/dclm_ratios.csv"), ("olmix_dclm_metrics", "olmix/dclm_metrics.csv"),
    ("admire_ift_runs", "admire/admire_ift_runs.csv"),  # CC BY-NC-SA: read in place, never copied
]:
    register(Dataset(_name, f"mixture_runs/{_rel}", None, None, f"published mixture-run table {_rel}",
                     "mixmin_core.search.run_tables"))


#: Where a checkout beside the project's shared data finds it when MIXMIN_DATA_DIR is unset.
_SIBLING_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # <checkout>/../shared/data


def assay_tables() -> tuple[str, ...]:
    """Registry names of the bioassay tables a chemistry config's ``dataset:`` may name."""
    loaders = {f"mixmin_core.chem.data.{f}" for f in ("load_assay_table", "load_pcba128", "load_pcba1328")}
    return tuple(n for n, ds in REGISTRY.items() if ds.parser in loaders)


def data_dir() -> Path | None:
    """``$MIXMIN_DATA_DIR``, else ``../shared/data`` beside the checkout if it exists, else None."""
    value = os.environ.get("MIXMIN_DATA_DIR")
    if value:
        return Path(value).expanduser().resolve()
    return _SIBLING_DATA if _SIBLING_DATA.is_dir() else None


#: Set (to 1) in the environment of jobs the app starts: their files must lie in the data
#: directory or the run store. A config given on the command line is not confined.
CONFINE_ENV = "MIXMIN_CONFINE_PATHS"


_CONFINED_HERE: contextvars.ContextVar[bool] = contextvars.ContextVar("mixmin_confined", default=False)


def confined() -> bool:
    """True in a job the app started (``MIXMIN_CONFINE_PATHS=1``), and inside :func:`confinement`."""
    return os.environ.get(CONFINE_ENV) == "1" or _CONFINED_HERE.get()


@contextlib.contextmanager
def confinement():
    """Check and resolve as a confined job would, in this thread only (the app checks a visitor's config
    in its own process before it starts the job)."""
    token = _CONFINED_HERE.set(True)
    try:
        yield
    finally:
        _CONFINED_HERE.reset(token)


def allowed_roots() -> list[Path]:
    """Where a confined job may read: the data directory and the run store (``MIXMIN_HOME``)."""
    from mixmin_core.runs.store import default_home

    return [root for root in (data_dir(), default_home()) if root is not None]


def check_path(path: str | os.PathLike, what: str) -> Path:
    """``path`` resolved (symlinks followed) if it lies in :func:`allowed_roots`.

    Raises
    ------
    InputError
        Naming ``what`` and the path (never the file's contents) when it lies elsewhere.
    """
    real = Path(os.path.realpath(Path(path).expanduser()))
    roots = [Path(os.path.realpath(r)) for r in allowed_roots()]
    if not any(real == r or r in real.parents for r in roots):
        raise InputError(f"{what}: {str(path)[:200]!r} is outside the data directory and the run store "
                         f"({', '.join(str(r) for r in roots)}); jobs started from the app read files only there. "
                         "Put the file in the data directory, or start the job with `python -m jobs run`.")
    return real


def check_config_paths(config: dict, where: str = "") -> None:
    """In a confined job, refuse any text field of ``config`` that names a file or folder outside
    :func:`allowed_roots` (``path``, ``metadata``, a tokenizer, a sources folder...), whatever the pipeline calls
    the field. A value written as a path (absolute, ``~``, or with a folder) is refused whether or not it exists,
    so the error says nothing about the owner's files; a bare name only where it exists (a file in the working
    folder: the checkout). Does nothing for a job started on the command line."""
    if not confined():
        return
    items = config.items() if isinstance(config, dict) else enumerate(config)
    for key, value in items:
        name = f"{where}{key}" if isinstance(config, dict) else f"{where.rstrip('.')}[{key}]"
        if where == "" and key in ("name", "pipeline"):
            continue
        if isinstance(value, (dict, list)):
            check_config_paths(value, f"{name}.")
        elif isinstance(value, str) and value and len(value) < 4096 and "\0" not in value:
            written_as_path = value not in REGISTRY and (  # a registered name (text/piqa_validation) is no path
                value.startswith(("~", os.sep)) or os.sep in value or bool(os.altsep and os.altsep in value))
            try:
                exists = written_as_path or os.path.lexists(Path(value).expanduser())
            except (OSError, ValueError):
                exists = False
            if exists:
                check_path(value, name)


def cache_dir() -> Path:
    """Downloads and fingerprints: ``$MIXMIN_CACHE`` (default ``~/.cache/mixmin``); for a confined job, the
    run store's ``cache`` folder (it may read and write nowhere else)."""
    if confined():
        from mixmin_core.runs.store import default_home

        return default_home() / "cache"
    return Path(os.environ.get("MIXMIN_CACHE", Path.home() / ".cache" / "mixmin")).expanduser()


def resolve(name: str, path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """The local path of registered dataset ``name`` (or of ``path`` if given).

    Raises
    ------
    InputError
        If ``name`` is unknown, ``path`` does not exist, or the file is not available locally
        and cannot be downloaded (the message says where to put it).
    """
    if path is not None:
        p = Path(path).expanduser()
        if confined():
            check_path(p, f"the path of dataset {name!r}")
        if not p.exists():
            raise InputError(f"{p}: file not found{fileio.relative_hint(p)} (given explicitly for dataset {name!r}).")
        if not p.is_file():  # a folder, or a device such as /dev/zero that would be read forever
            raise InputError(f"{p}: not a regular file (given explicitly for dataset {name!r}); pass a data file.")
        return p
    if name not in REGISTRY:
        raise InputError(f"unknown dataset {name!r}; registered: {sorted(REGISTRY)}. Pass a path instead.")
    ds = REGISTRY[name]
    candidates = ([data_dir() / ds.relpath] if data_dir() else []) + [cache_dir() / ds.relpath]
    for candidate in candidates:
        if candidate.exists():
            if ds.sha256:
                _check_local(ds, candidate)
            return candidate
    reason = "no public direct download" if not ds.url else "downloads are disabled (MIXMIN_OFFLINE=1)"
    if confined() and ds.url:  # a visitor's job does not reach the network
        reason = "jobs started from the app do not download (run `python -m jobs run` on the machine once)"
    elif download and ds.url and os.environ.get("MIXMIN_OFFLINE") != "1":
        try:
            return _download(ds, cache_dir() / ds.relpath)
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
            why = repr(exc) if isinstance(exc, http.client.HTTPException) else str(exc)  # IncompleteRead's str is ""
            reason = f"download from {ds.url} failed ({why})"
    where = " or ".join(str(c) for c in candidates)
    no_dir = "" if not data_dir() or data_dir().is_dir() else (
        f" (MIXMIN_DATA_DIR is {data_dir()}, which is a file: name the folder that holds chem/ and text/)"
        if data_dir().exists() else f" (MIXMIN_DATA_DIR is {data_dir()}, which does not exist: a typo?)")
    raise InputError(
        f"dataset {name!r} ({ds.description}) is not available locally and {reason}. "
        f"Put the file at {where}, or set MIXMIN_DATA_DIR to a folder holding {ds.relpath}.{no_dir}"
    )


def _download(ds: Dataset, dest: Path) -> Path:
    """Fetch ``ds`` into ``dest`` (atomically: a failed or refused download leaves nothing to be reused)."""
    from tqdm.auto import tqdm

    with urllib.request.urlopen(ds.url, timeout=30) as resp:
        length = (resp.headers.get("Content-Length") or "").strip()
        total = int(length) if length.isdigit() and int(length) > 0 else None
        with fileio.atomic_path(dest) as tmp, open(tmp, "wb") as fh, \
                tqdm(total=total, unit="B", unit_scale=True, desc=f"download {ds.name}") as bar:
            got = 0
            for block in iter(lambda: resp.read(1 << 20), b""):
                fh.write(block)
                got += len(block)
                bar.update(len(block))
            fh.flush()
            if total is not None and got != total:  # a cut connection ends the body early without an error
                raise OSError(f"the download ended after {got:,} of {total:,} bytes; try again")
            if ds.sha256 and fileio.sha256_file(tmp) != ds.sha256:
                raise InputError(f"{ds.url}: checksum mismatch after download; expected sha256 {ds.sha256[:12]}....")
            _check_kind(tmp, ds)
    return dest


#: First bytes of the binary kinds a registered file may be (an error page served in its place has none of them).
_MAGIC = {".gz": b"\x1f\x8b", ".parquet": b"PAR1"}


def _check_kind(path: Path, ds: Dataset) -> None:
    """An OSError if a download without a pinned checksum is not the kind of file its name says (a proxy's or a
    bucket's HTML error page saved as ``pcba.csv.gz``, which every later run would reuse from the cache)."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    magic = next((m for suffix, m in _MAGIC.items() if ds.relpath.endswith(suffix)), None)
    if magic:
        bad = not head.startswith(magic)
    else:
        bad = ds.relpath.endswith(".json") and head.lstrip()[:1] not in (b"{", b"[")  # (a BOM too: unreadable)
    if bad:
        raise OSError(f"the server sent something other than {Path(ds.relpath).name} (it starts with {head[:20]!r}); "
                      "nothing was saved")
    if ds.relpath.endswith(".gz"):  # read to its end: a body cut short without a Content-Length ends early
        import gzip

        try:
            with gzip.open(path, "rb") as fh:
                while fh.read(1 << 24):
                    pass
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise OSError(f"the download of {Path(ds.relpath).name} is incomplete or corrupt ({exc}); nothing was "
                          "saved, try again") from None


#: Local copies compared with their registered checksum in this process: (path, size, mtime) -> "" where it matched,
#: else what was said.
_CHECKED: dict[tuple, str] = {}


def _check_local(ds: Dataset, path: Path) -> None:
    """Warn (once per file version and process) when a local copy differs from the registered public file:
    results on a subset or another release are not comparable with runs on the published data."""
    try:
        stat = path.stat()
    except OSError:
        return
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _CHECKED:
        same = fileio.sha256_file(path) == ds.sha256
        _CHECKED[key] = "" if same else (
            f"{path}: differs from the registered {ds.name} ({ds.description}; sha256 {ds.sha256[:12]}...): results "
            "will not match runs on the published file. Fine for a copy you changed on purpose; otherwise replace it.")
        if not same:
            log.warning("%s", _CHECKED[key])


def differing_local_copies() -> list[str]:
    """What :func:`resolve` said in this process of local copies that differ from their registered files (a job
    logs them again once its log exists: they were said while its config was checked, before)."""
    return [said for said in _CHECKED.values() if said]


def verify(name: str, path: Path) -> bool:
    """True if ``path`` matches the registered checksum (or none is pinned)."""
    ds = REGISTRY[name]
    return ds.sha256 is None or fileio.sha256_file(path) == ds.sha256
