"""Library notices kept off the console of pureffcv's commands: Lightning's tips (litlogger,
litmodels), its tensorboardX notice, torch's LeafSpec deprecation raised inside Lightning, and
Numba's note that mixup/cutmix's JIT step takes its once-per-batch decision in object mode (on
purpose: ``operations.device.batch.JitPairs``). They are advice or internal deprecations, not
about the user's run; a user sees pureffcv's
lines, their metrics and every other warning and log line."""
import logging
import re
import warnings

#: the messages dropped (substrings)
NOTICES = ("Tip:", "litlogger", "litmodels", "tensorboardX` has been removed as a dependency",
           "isinstance(treespec, LeafSpec)` is deprecated",
           "Code running in object mode won't allow parallel execution")


class DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(notice in message for notice in NOTICES)


def quiet_library_notices() -> None:
    """Ignore the NOTICES as warnings, and drop them from Lightning's log handlers (which
    also see what its child loggers, such as the rank-zero ones, propagate). Idempotent."""
    for notice in NOTICES:
        warnings.filterwarnings("ignore", message=".*" + re.escape(notice))
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero",
                 "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        for holder in [logger, *logger.handlers]:
            if not any(isinstance(f, DropNotices) for f in holder.filters):
                holder.addFilter(DropNotices())
