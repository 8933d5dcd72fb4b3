"""What Lightning iterates each epoch: FFCV Loaders and the image-folder fallback, with the
pipeline's epoch set before every pass, iterators that Lightning abandons early closed and
joined, and evaluation batches numbered by their .beton index.

Every epoch sets the pipeline's keyed-RNG epoch (and the Loader's order epoch) before
``iter``, so a resumed run draws what an uninterrupted one would (``epoch_to_run``).
"""
from typing import Callable

import torch

from . import loading


class _BeforeEachEpoch:
    """A loader wrapper that calls ``before_epoch`` before every epoch, its length the
    loader's."""

    def __init__(self, loader, before_epoch: Callable):
        self.loader = loader
        self.before_epoch = before_epoch

    def __len__(self) -> int:
        return len(self.loader)


class EpochLoader(_BeforeEachEpoch):
    """An FFCV Loader that Lightning iterates once per epoch and may stop early.

    Each ``iter(loader)`` starts an ``EpochIterator`` thread that FFCV never joins when
    iteration stops before the end (ffcv #345, #393): it blocks forever on its full output
    queue, holding its batch buffers. Here ``iter`` first closes the previous iterator
    (``pipelines.loading.close``), so threads and memory stay flat, and an error in the thread
    raises ``loading.LoaderError`` instead of leaving the epoch waiting. ``before_epoch(loader)``
    returns the epoch about to run and prepares the pipeline for it; the Loader's own epoch
    counter, which seeds FFCV's random orders, is set to the same.
    """

    def __init__(self, loader, before_epoch: Callable[[object], int]):
        super().__init__(loader, before_epoch)
        # not ``_iterator``: Lightning sets a loader's ``_iterator`` to None when it resets
        # a torch DataLoader, which would lose the thread this class must join
        self._epoch_iterator = None

    def __iter__(self):
        self.close()
        self.loader.next_epoch = self.before_epoch(self.loader)
        # FFCV allocates the epoch's batch buffers here and fills them in place from its
        # thread: they must not be inference tensors (Lightning validates in inference mode)
        with torch.inference_mode(False):
            self._epoch_iterator = loading.start(self.loader)
        return loading.in_output_order(loading.batches(self._epoch_iterator), self.loader)

    def close(self) -> None:
        """Stop and join the running epoch's thread, if any, and release its buffers."""
        iterator, self._epoch_iterator = self._epoch_iterator, None
        if iterator is not None:
            loading.close(iterator)


class FallbackEpochs(_BeforeEachEpoch):
    """A FallbackLoader that sets the pipeline's epoch before every pass, like EpochLoader."""

    def __iter__(self):
        self.before_epoch()
        return iter(self.loader)


class IndexedBatches:
    """An evaluation loader's ``(images, labels)`` batches as ``(images, labels, indices)``,
    ``indices`` the samples' positions in the .beton (the loader reads ``start``, ``start +
    1``, ... in order)."""

    def __init__(self, loader, start: int):
        self.loader, self.start = loader, start

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        position = self.start
        for images, labels in self.loader:
            count = images.shape[0]
            yield images, labels, torch.arange(position, position + count)
            position += count

    def close(self) -> None:
        self.loader.close()


def epoch_to_run(trainer) -> int:
    """The training epoch the Trainer is about to run. Not ``trainer.current_epoch`` (the
    epochs *completed*): a run resumed from a checkpoint written after an epoch's last batch
    (``last.ckpt``) starts its next epoch before that counter catches up, and would replay the
    previous epoch's order and draws. Lightning's own sampler epoch is the one used here."""
    return int(trainer.fit_loop.epoch_progress.current.processed)
