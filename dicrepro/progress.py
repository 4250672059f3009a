"""Progress bars that read well live in JupyterLab and after the fact in an executed notebook.

In JupyterLab, tqdm's widget bar. Under ``dicrepro run`` (papermill sets ``DICREPRO_PROGRESS=text`` for its
kernels) a plain text bar on stderr, refreshed at most every few seconds: an executed notebook keeps the
text of its last refresh (100%), whereas a widget bar is saved at its first frame (0%).
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm as _text_tqdm
from tqdm.auto import tqdm as _auto_tqdm


def text_mode() -> bool:
    """True when bars should be plain text (``DICREPRO_PROGRESS=text``, as under ``dicrepro run``)."""
    return os.environ.get("DICREPRO_PROGRESS", "").lower() == "text"


def tqdm(*args, **kwargs):
    """A tqdm bar of the right kind for where the code runs (same arguments as ``tqdm.tqdm``)."""
    if text_mode():
        kwargs.setdefault("file", sys.stderr)
        kwargs.setdefault("mininterval", 5.0)
        kwargs.setdefault("ncols", 100)
        return _text_tqdm(*args, **kwargs)
    return _auto_tqdm(*args, **kwargs)


def unattended() -> bool:
    """True when no one watches the notebook (``dicrepro run``/papermill): show static HTML, not widgets."""
    return text_mode()
