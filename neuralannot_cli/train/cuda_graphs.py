"""Replay the training loss's forward and backward from CUDA graphs (``TrainConfig.cuda_graphs``).

On a GPU a NeuralAnnot training step is launch-bound: a stage-2 step at batch 64-256 is ~2,000 small kernels
(ResNet-18 at 32 px, the SMPL-X joint forward, the losses, their backward), and eager PyTorch spends more time
issuing them than the GPU spends running them. ``torch.cuda.make_graphed_callables`` captures the forward and
the backward of a loss module (:mod:`.steps`) once and replays each with one launch; the optimiser step stays
eager (a few fused ``foreach`` kernels).

:class:`LossRunner` keeps one graph per *input signature* (the module's key, e.g. the stage-2 batch layout,
and the shapes / dtypes / devices of the input tensors). A batch with a signature it has no graph for, once
:attr:`LossRunner.max_graphs` are captured, runs eagerly; so does everything when graphs are off, on the CPU,
or after a capture failed (warned once; training goes on eagerly with the same numbers).

Capture runs the module a few times on the first batch of a signature (warm-up on a side stream, then the
capture itself); the module's buffers (BatchNorm running statistics) are restored afterwards, so the only
update they see from that batch is the real step's. The replayed step computes what the eager one does, up to
the GPU's own run-to-run float differences (``tests/test_cuda_graphs.py``, skipped without a GPU).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import nn

__all__ = ["LossRunner", "input_signature"]

Capture = Callable[[nn.Module, tuple[torch.Tensor, ...]], Callable[..., Any]]


def input_signature(key: Hashable, inputs: tuple[torch.Tensor, ...]) -> tuple[Any, ...]:
    """What a captured graph is specific to: ``key`` and each input's shape, dtype, device and requires_grad."""
    return (key, tuple((tuple(t.shape), t.dtype, t.device, t.requires_grad) for t in inputs))


def _capture_cuda(module: nn.Module, sample: tuple[torch.Tensor, ...]) -> Callable[..., Any]:
    return torch.cuda.make_graphed_callables(module, sample, num_warmup_iters=3, allow_unused_input=True)


class LossRunner:
    """Calls loss modules eagerly or through CUDA graphs, one graph per input signature.

    Args:
        enabled: use graphs (needs CUDA inputs; CPU inputs always run eagerly).
        max_graphs: at most this many captures; later new signatures run eagerly.
        capture: ``capture(module, sample_inputs) -> callable`` (default
            ``torch.cuda.make_graphed_callables``; tests inject their own).
        device_type: inputs on other device types run eagerly (tests of the bookkeeping use ``'cpu'``).

    Attributes:
        graphs: captured callables by signature.
        failed: a capture raised; everything runs eagerly from then on.
        eager_calls, graph_calls: counts, for the log.
    """

    def __init__(self, enabled: bool, *, max_graphs: int = 4, capture: Capture | None = None,
                 device_type: str = "cuda") -> None:
        self.enabled = bool(enabled)
        self.device_type = device_type
        self.max_graphs = int(max_graphs)
        self._capture = capture if capture is not None else _capture_cuda
        self.graphs: dict[tuple[Any, ...], Callable[..., Any]] = {}
        self.failed = False
        self.eager_calls = 0
        self.graph_calls = 0

    def __call__(self, key: Hashable, build: Callable[[], nn.Module], inputs: tuple[torch.Tensor, ...]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``build()(*inputs)``, replayed from the graph of this signature when there is (or can be) one.

        ``build`` makes the loss module for ``key``; it is called for eager calls and once per capture. The
        outputs of a replay live in the graph's static memory: read them before the next call.
        """
        sig = input_signature(key, inputs)
        graphed = self.graphs.get(sig)
        if graphed is None and self._may_capture(inputs):
            graphed = self._try_capture(sig, build(), inputs)
        if graphed is None:
            self.eager_calls += 1
            return build()(*inputs)
        self.graph_calls += 1
        return graphed(*inputs)

    def _may_capture(self, inputs: tuple[torch.Tensor, ...]) -> bool:
        return (self.enabled and not self.failed and len(self.graphs) < self.max_graphs
                and torch.is_grad_enabled() and all(t.device.type == self.device_type for t in inputs))

    def _try_capture(self, sig: tuple[Any, ...], module: nn.Module, inputs: tuple[torch.Tensor, ...]):
        saved = {name: b.detach().clone() for name, b in module.named_buffers()}
        sample = tuple(t.detach().clone().requires_grad_(t.requires_grad) for t in inputs)
        try:
            graphed = self._capture(module, sample)
        except Exception as err:  # noqa: BLE001 - any capture problem: warn once, train eagerly
            self.failed = True
            first_line = str(err).splitlines()[0] if str(err) else ""
            warnings.warn(f"CUDA graph capture failed ({type(err).__name__}: {first_line}); "
                          "training continues eagerly (same numbers, no graphs)", stacklevel=3)
            return None
        finally:
            with torch.no_grad():
                for name, b in module.named_buffers():
                    b.copy_(saved[name])
        self.graphs[sig] = graphed
        return graphed
