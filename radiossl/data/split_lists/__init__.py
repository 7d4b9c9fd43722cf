"""Package data: the thesis' BraTS-18 patient split lists.

``brats_train.txt`` (199 patients: 141 HGG + 58 LGG), ``brats_valid.txt`` (43: 34 + 9) and
``brats_test.txt`` (35: 30 + 5) hold one ``HGG/<PID>`` or ``LGG/<PID>`` per line. They are the lists
the radioSSL thesis code read from ``train_val_txt/``, which it inherited unchanged from the public
PCRLv2 repository (github.com/RL4M/PCRLv2, branch ``finetune``, commit ``3cca41c``); the counts match
the thesis description exactly. The three lists are disjoint and cover 277 of the 285 BraTS-18
training cases.

They are read by :class:`radiossl.data.datasets.brats18.BraTS18` through :func:`read_list`.

Example:
    >>> len(read_list("brats_train.txt")), read_list("brats_test.txt")[0].startswith(("HGG/", "LGG/"))
    (199, True)
"""

from __future__ import annotations

from importlib import resources


def read_list(name: str) -> list[str]:
    """Non-empty, stripped lines of the packaged list file ``name``."""
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]
