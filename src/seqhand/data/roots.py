"""Where the real datasets live: an explicit argument, else ``$SEQHAND_DATA/<default name>``.

``SEQHAND_DATA`` is the only environment variable that library code reads (documented in
``docs/datasets.md``). It points at a directory holding the datasets as published, e.g.::

    $SEQHAND_DATA/FreiHAND/          training/ evaluation/ training_K.json ...
    $SEQHAND_DATA/STB/               images/ labels/
    $SEQHAND_DATA/EgoDexter/         data/Desk/ data/Fruits/ ...
    $SEQHAND_DATA/DexterObject/      data/Grasp1/ ...
    $SEQHAND_DATA/RHD_published_v2/  training/ evaluation/
"""

from __future__ import annotations

import os
from pathlib import Path

from seqhand.data.types import DatasetNotFoundError

ENV_VAR = "SEQHAND_DATA"
DEFAULT_DIRNAMES: dict[str, str] = {
    "freihand": "FreiHAND",
    "stb": "STB",
    "egodexter": "EgoDexter",
    "dexter_object": "DexterObject",
    "rhd": "RHD_published_v2",
}


def data_home() -> Path | None:
    """The directory named by ``$SEQHAND_DATA``, or ``None`` if the variable is unset/empty."""
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else None


def resolve_root(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """The root directory of ``dataset``.

    Args:
        dataset: one of :data:`DEFAULT_DIRNAMES`.
        root: an explicit directory; when given it wins and ``$SEQHAND_DATA`` is not consulted.

    Raises:
        DatasetNotFoundError: naming the directory that was tried and how to point elsewhere.
    """
    if dataset not in DEFAULT_DIRNAMES:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(DEFAULT_DIRNAMES)}")
    if root is not None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise DatasetNotFoundError(f"{path}: the {dataset} root directory does not exist")
        return path
    home = data_home()
    if home is None:
        raise DatasetNotFoundError(
            f"no root given for {dataset} and ${ENV_VAR} is not set: pass the dataset directory "
            f"or set {ENV_VAR} to the folder that contains {DEFAULT_DIRNAMES[dataset]}/"
        )
    path = home / DEFAULT_DIRNAMES[dataset]
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"{path}: expected the {dataset} dataset here (${ENV_VAR}={home}); "
            "pass its directory explicitly or move it there"
        )
    return path
