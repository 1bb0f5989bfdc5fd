"""Shared torch plumbing for the course's models: devices, CPU speed settings and seeded generators."""

from __future__ import annotations

import numpy as np
import torch


def resolve_device(device: str | torch.device | None = "cpu") -> torch.device:
    """The torch device a model trains and scores on.

    ``"cpu"`` (the default everywhere, and ``None``) keeps the laptop path; ``"auto"`` picks the first
    CUDA GPU when one is present and the CPU otherwise (the paper-size settings pass ``"auto"``);
    ``"cuda"``/``"cuda:1"`` ask for a GPU and fail clearly without one. Used by every torch model's ``device``.

    Parameters
    ----------
    device : str | torch.device | None
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"``, a torch device or None.

    Returns
    -------
    torch.device
        The device.

    Raises
    ------
    ValueError
        For an unknown device, or a GPU asked for where there is none.
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a torch device: use 'cpu', 'cuda', 'cuda:N' or 'auto'.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for a GPU, but torch sees no CUDA device here "
                         f"(torch {torch.__version__}): use device='cpu', or device='auto' to take a GPU "
                         "only when one is present.")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: the course's models run on 'cpu' or 'cuda' only.")
    return dev


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor's values as a NumPy array, from any device (no copy for a CPU tensor).

    Parameters
    ----------
    t : torch.Tensor
        Any tensor.

    Returns
    -------
    np.ndarray
        Its values.
    """
    return t.detach().cpu().numpy()


def prepare_cpu_training(threads: int | None = None) -> None:
    """Flush denormals and cap threads.

    Weight-decayed embeddings fill with denormal floats, and CPU arithmetic on them is slow.

    Parameters
    ----------
    threads : int | None
        Torch CPU threads (None leaves torch's setting).
    """
    torch.set_flush_denormal(True)
    if threads:
        torch.set_num_threads(threads)


def generator(seed: int | None) -> torch.Generator:
    """A torch generator seeded from ``seed`` (fresh entropy when None).

    Always a CPU generator: random draws are made on the CPU and moved to the model's device, so a
    seed gives the same minibatch order, masks and initial weights on every device.

    Parameters
    ----------
    seed : int | None
        The seed; None for fresh entropy.

    Returns
    -------
    torch.Generator
        A CPU generator.
    """
    g = torch.Generator()
    g.manual_seed(int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (2**63)))
    return g


def params_key(params: dict[str, torch.Tensor], trainings: int) -> tuple:
    """A key that changes whenever the model trains or a parameter tensor is replaced or edited in place.

    ``trainings`` counts the model's training calls (``fit`` and ``continue_training`` bump it): fused optimiser
    steps update the tensors without bumping their autograd version counters, which catch the other in-place edits
    (an assignment into a tensor). Caches keyed on it (:class:`ScoreCache`, RCF's per-user parts) never serve values
    of parameters that have since moved.

    Parameters
    ----------
    params : dict[str, torch.Tensor]
        The model's parameters.
    trainings : int
        The model's training-call counter.

    Returns
    -------
    tuple
    """
    return (trainings, *((k, id(v), v._version) for k, v in params.items()))


class ScoreCache:
    """Per-user catalogue scores, kept until the parameters move (:func:`params_key`); at most ``max_floats`` scores.

    Used by NCF and RCF (06_accent): every explainer asks for the top-k of the user it explains, and the user's
    recommendation has already been scored once.
    """

    def __init__(self, max_floats: int = 16_000_000):
        self.max_floats, self._key, self._rows = max_floats, None, {}  # 64 MB of float32 at most

    def scores(self, key: tuple, users: np.ndarray, compute) -> np.ndarray:
        """Rows of ``compute(missing_users) -> (n, n_items)`` for ``users``, computed only for users not cached.

        Parameters
        ----------
        key : tuple
            :func:`params_key` of the parameters the scores come from.
        users : np.ndarray
            Internal user ids (validated).
        compute : callable
            Scores of the users not cached, one row each.

        Returns
        -------
        np.ndarray
            (len(users), n_items) float32.
        """
        if not len(users):
            return np.asarray(compute(np.zeros(0, dtype=np.int64)), dtype=np.float32)
        if key != self._key:
            self._key, self._rows = key, {}
        missing = np.unique([int(u) for u in users if int(u) not in self._rows]).astype(np.int64)
        fresh = dict(zip(missing.tolist(), np.asarray(compute(missing), dtype=np.float32))) if len(missing) else {}
        rows = [self._rows.get(int(u), fresh.get(int(u))) for u in users]
        if (len(self._rows) + len(fresh)) * rows[0].shape[0] <= self.max_floats:
            self._rows.update(fresh)
        return np.stack(rows)


class CachedScores:
    """Mixin of the stacked torch models (NCF, RCF): ``_score`` served by a :class:`ScoreCache` (06_accent).

    The model implements ``_score_catalogue(users)`` (every item's score, computed) and keeps its parameters in
    ``self._stack.params``; it calls ``_parameters_moved()`` whenever it trains.
    """

    def _parameters_moved(self) -> None:
        self._trainings = getattr(self, "_trainings", 0) + 1  # cached scores are stale from here on

    def _params_key(self) -> tuple:
        return params_key(self._stack.params, getattr(self, "_trainings", 0))

    def _score(self, users: np.ndarray) -> np.ndarray:
        # kept until the parameters move: every explainer of 06_accent asks for the top-k of the users it explains
        if getattr(self, "_scores", None) is None:
            self._scores = ScoreCache()
        return self._scores.scores(self._params_key(), users, self._score_catalogue)
