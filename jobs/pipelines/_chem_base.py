"""The config fields the chemistry pipelines share: which table to read (all three), and the fields of the
"beyond the paper" pipelines (``chem_evolve``, ``chem_ladder``)."""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

from jobs.config import MAX_TREES, ExecutionConfig, setting
from mixmin_core.chem.experiment import ChemData
from mixmin_core.errors import ConfigError, InputError
from mixmin_core.runs.datasets import assay_tables

FORMATS = ("auto", "moleculenet", "pcba128", "pcba1328")


@dataclass
class ChemDataConfig(ExecutionConfig):
    """Which assay table to read (:class:`~mixmin_core.chem.experiment.ChemData`)."""

    dataset: str = setting("toxcast", choices=("", *assay_tables()),
                           doc="registry name: toxcast, muv, tox21, sider, clintox, pcba128, pcba1328")
    path: str = setting("", doc="a CSV / CSV.gz / Parquet in the MoleculeNet layout; overrides the registry file")
    format: str = setting("auto", choices=FORMATS)
    smiles_column: str = "smiles"
    ignore_columns: list[str] = setting(["mol_id"], doc="non-assay columns of a user table")  # noqa: RUF009 - setting() returns a dataclasses.field
    metadata: str = setting("auto", doc="assay titles/categories: auto | registered metadata name (e.g. "
                                        "toxcast_assays) | path | ''")
    max_molecules: int = setting(0, min=0, max=100_000_000, doc="first N molecules (0 = all; PCBA-1328: 100,000 as in the paper)")

    gpu_library = "XGBoost"

    def cuda_available(self) -> bool:
        from mixmin_core.chem.proxies import resolve_device

        return resolve_device("auto") == "cuda"

    def __post_init__(self):
        super().__post_init__()
        if not self.dataset and not self.path:
            raise ConfigError("dataset or path: one must be given (e.g. dataset: toxcast, or path: my_assays.csv); "
                              "got both empty.")

    @property
    def data(self) -> ChemData:
        return ChemData(self.dataset, self.path, self.format, self.smiles_column, tuple(self.ignore_columns),
                        self.metadata, self.max_molecules)


@dataclass
class ChemBeyondConfig(ChemDataConfig):
    """Data, proxy, final-model and solver fields (subclassed by each pipeline)."""

    trials: int = setting(1, min=1, max=1, doc="one trial: the chemistry pipeline's trial-0 splits")
    proxy_depth: int = setting(6, min=1, max=20)
    final_trees: int = setting(100, min=1, max=MAX_TREES, doc="the paper's final models: 100 trees of depth 6")
    final_depth: int = setting(6, min=1, max=20)
    max_final_rows: int = setting(50_000, min=0, max=100_000_000, doc="rows drawn from the weighted union per final model (0 = all)")
    step_size: float = setting(1.0, gt=0, max=1e6, doc="MixMin's entropic mirror descent (paper: 1.0, 100 steps)")
    max_iter: int = setting(100, min=1, max=100_000)
    xgb_threads: int = setting(1, min=1, max=256, doc="threads per XGBoost model (units already run in n_workers processes)")


def check_assays(key: str, value, *, count: bool = True) -> None:
    """``value`` is a non-empty list of assay names or, where ``count``, N >= 1 ("the next N assays").

    Raises
    ------
    ConfigError
        ``<key>: must be ...; got <value>.``
    """
    if count and isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return
    if isinstance(value, list) and value and all(isinstance(a, str) and a for a in value):
        return
    what = "a positive count or " if count else ""
    raise ConfigError(f"{key}: must be {what}a non-empty list of assay names; got {value!r}.")


@contextlib.contextmanager
def default_said(config, key: str):
    """An InputError raised inside, while ``key`` is at its default (ToxCast assay names), says it is the default:
    ``assay 'ACEA_T47D_80hr_Negative' does not exist in my_assays.csv`` read as a typo in a config without it."""
    try:
        yield
    except InputError as exc:
        f = next(f for f in dataclasses.fields(config) if f.name == key)
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if getattr(config, key) != default:
            raise
        raise InputError(f"{key}: not given, so the default {default!r} (ToxCast assays) is used, and {exc} Give "
                         f"`{key}:` with assays of your table.") from None
