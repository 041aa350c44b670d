"""``retriever tune``: learn the hybrid setting and the twin from a person's judgments, safely.

Everything is decided by k-fold cross-validation over the judged queries (``cv.py``); only what does not
lose is kept, recorded in the index manifest, and used by ``Retriever.load`` without any option.
"""

from retriever.training.tune.finetune import FineTuneSetting
from retriever.training.tune.run import TuneReport, tune

__all__ = ["FineTuneSetting", "TuneReport", "tune"]
