"""Compiling the CPU kernels ahead (``sqsim warmup``), and the progress line a first run shows while Numba
compiles them.

Numba compiles a kernel the first time it is called with new argument types and caches the machine code
on disk (``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the sources), keyed by the CPU target
(:mod:`sqsim.cpu_target`).  The first run on a machine therefore compiles what that run needs (the
dense ops of its network, the decoders of its stream kinds and code widths); later processes load it.
:func:`warmup` runs small networks through every path of the CPU backend, so everything is compiled
before the first real run; :class:`CompileProgress` reports compiles as they happen.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np

PROGRESS_TEXT = "compiling CPU kernels, once per machine"
# (code bits, index bits) of the layers warmup compiles the fixed-width kernels for: Deep Compression's
# (8-bit conv codes, 5-bit fc codes, 4-bit indices), 6-bit codes (SqueezeNet's Table 1), dense code
# storage (no index stream) and pruned fp32 values (no code stream).
WARM_WIDTHS = ((8, 4), (6, 4), (5, 4), (4, 4), (8, 0), (6, 0), (0, 4))


class CompileProgress:
    """Prints ``compiling CPU kernels, once per machine: n/m (what)`` on ``stream`` whenever Numba starts
    compiling (nothing when everything comes from the cache), and a closing line with the count and time.

    Use as a context manager; :meth:`at` says where the work is (``n`` of ``m`` steps and a name)."""

    def __init__(self, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.compiled = 0
        self._where = (0, 0, "")
        self._shown = None
        self._t0 = None
        self._depth = 0
        self._listener = None

    def at(self, n: int, m: int, what: str) -> None:
        self._where = (n, m, what)

    def _started(self, event) -> None:
        self._depth += 1
        if self._depth > 1:  # a kernel's callees compile inside it
            return
        if self._t0 is None:
            self._t0 = time.perf_counter()
        if self._where != self._shown:
            n, m, what = self._where
            self.stream.write(f"{PROGRESS_TEXT}: {n}/{m} ({what})\n" if m else f"{PROGRESS_TEXT}: {what}\n")
            self.stream.flush()
            self._shown = self._where

    def _ended(self, event) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.compiled += 1

    def __enter__(self) -> "CompileProgress":
        from numba.core import event as ev

        progress = self

        class _Listener(ev.Listener):
            def on_start(self, event):
                progress._started(event)

            def on_end(self, event):
                progress._ended(event)
        self._listener = _Listener()
        ev.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc) -> None:
        from numba.core import event as ev
        ev.unregister("numba:compile", self._listener)
        if self.compiled:
            self.stream.write(f"{PROGRESS_TEXT}: done, {self.compiled} compiled in "
                              f"{time.perf_counter() - self._t0:.1f} s (cached for later runs)\n")
            self.stream.flush()


@dataclass(frozen=True)
class _Job:
    """One warmup network: a name, and a function that builds ``(graph, weights, batches)``; with
    ``datapaths``, a function of the graph and weights giving the emulated datapaths to run it on."""
    name: str
    build: object
    datapaths: object = None


def _conv_net(name, shape, convs, pools=(), fc=None):
    """A chain of convs (``(out, kernel, stride, pad, groups)``), then pools and an optional fc layer."""
    from ..ir import Graph, Layer
    layers = [Layer("data", "input", shape=shape)]
    prev = "data"
    for i, (out, kernel, stride, pad, groups) in enumerate(convs):
        layers.append(Layer(f"conv{i}", "conv2d", (prev,), out_channels=out, kernel=kernel, stride=stride, pad=pad,
                            groups=groups))
        layers.append(Layer(f"relu{i}", "relu", (f"conv{i}",)))
        prev = f"relu{i}"
    for i, (op, kw) in enumerate(pools):
        layers.append(Layer(f"pool{i}", op, (prev,), **kw))
        prev = f"pool{i}"
    if fc:
        layers.append(Layer("fc", "fc", (prev,), out_channels=fc))
        prev = "fc"
    layers.append(Layer("prob", "softmax", (prev,)))
    return Graph(layers, name=name)


def _jobs():
    """The warmup networks: every dense op and conv path, then the compressed forms of a small SqueezeNet
    (fixed width for each of WARM_WIDTHS, Huffman with and without multi-symbol tables, sparse convs)."""
    from ..ir import Compression, load
    from ..paths import REPO_ROOT
    from ..weights import he_init

    def dense_ops():
        g = _conv_net("ops", (16, 19, 19), [(16, (3, 3), (1, 1), (1, 1), 1), (24, (1, 1), (1, 1), (1, 1), 1),
                                            (24, (3, 3), (2, 2), (0, 0), 2)],
                      [("maxpool", dict(kernel=(3, 3), stride=(2, 2))), ("lrn", dict(local_size=5)),
                       ("avgpool", dict(kernel=(2, 2), stride=(1, 1), pad=(1, 1)))], fc=10)
        return g, he_init(g, 0), (1, 3)

    def alexnet_like():  # BLAS paths: wide 1x1s, few positions (channel split), 11x11/4 conv, max pools
        g = _conv_net("blas", (3, 35, 35), [(24, (11, 11), (4, 4), (2, 2), 1), (1000, (1, 1), (1, 1), (0, 0), 1),
                                            (12, (3, 3), (1, 1), (1, 1), 1)],
                      [("maxpool", dict(kernel=(3, 3), stride=(2, 2), ceil_mode=True))], fc=16)
        return g, he_init(g, 1), (1, 2)

    def squeezenet(huffman: bool, widths):
        g = load(REPO_ROOT / "archs" / "squeezenet_v1.1.yaml").with_input_size(67)
        bits, index = widths
        density = 1.0 if index == 0 else 0.3  # 0.3: the pruned convs run on the sparse kernel
        g = g.with_compression({l.name: Compression(density, bits or None, index or None)
                                for l in g.weighted_layers()})
        from ..compress import compress
        return g, compress(g, he_init(g, 2), huffman=huffman), (1, 2)

    def compressed_fc(huffman: bool, widths):
        from ..compress import compress
        from ..ir import Graph, Layer
        bits, index = widths
        density = 1.0 if index == 0 else 0.2
        g = Graph([Layer("data", "input", shape=(64, 3, 3)),
                   Layer("fc", "fc", ("data",), out_channels=40, compression=Compression(density, bits or None,
                                                                                         index or None)),
                   Layer("prob", "softmax", ("fc",))], name="fc")
        return g, compress(g, he_init(g, 3), huffman=huffman), (1, 2)

    jobs = [_Job("dense ops", dense_ops), _Job("BLAS convs", alexnet_like),
            _Job("SqueezeNet dense", lambda: (lambda g: (g, he_init(g, 0), (1, 2)))(
                load(REPO_ROOT / "archs" / "squeezenet_v1.1.yaml").with_input_size(67)))]
    jobs += [_Job("Huffman-coded SqueezeNet", lambda: squeezenet(True, (6, 4))),
             _Job("Huffman-coded SqueezeNet, dense codes", lambda: squeezenet(True, (8, 0))),
             _Job("Huffman-coded fc", lambda: compressed_fc(True, (5, 4)))]
    jobs += [_Job("emulated datapaths", dense_ops, _emulated_datapaths)]
    jobs += [_Job(f"fixed width {c}+{i} bits", lambda w=(c, i): squeezenet(False, w)) for c, i in WARM_WIDTHS]
    jobs += [_Job(f"fixed width fc {c}+{i} bits", lambda w=(c, i): compressed_fc(False, w)) for c, i in WARM_WIDTHS]
    return jobs


def _emulated_datapaths(g, weights) -> list:
    """Datapaths whose emulation takes every path: 16-bit (float64 sums), 6-bit (float32 sums), fp16."""
    from ..hw.spec import OperandPrecision as O
    from ..hw.spec import Precision
    from .calibrate import calibrate
    from .datapath import Datapath
    x = np.random.default_rng(0).random((2,) + tuple(g.input_shape), dtype=np.float32)
    out = []
    for prec in (Precision(O(16), O(16), O(32)), Precision(O(6), O(6), O(16)), Precision(O(8), O(16, "float"), O(32))):
        dp = Datapath(prec, "warmup")
        out.append(calibrate(g, weights, x, dp).apply(dp))
    return out


def warmup(progress: CompileProgress | None = None, threads: int | None = None, only=None) -> int:
    """Compile (or load from Numba's cache) every CPU kernel by running small networks through each path
    of the CPU backend at batch 1 and 2; returns how many networks ran.  ``progress`` is told each job;
    ``only``: the names of the jobs to run (default: all)."""
    from .executor import Executor
    jobs = [j for j in _jobs() if only is None or j.name in only]
    for i, job in enumerate(jobs, 1):
        if progress is not None:
            progress.at(i, len(jobs), job.name)
        g, weights, batches = job.build()
        if job.datapaths is not None:
            for dp in job.datapaths(g, weights):
                with Executor(g, weights, threads=threads, datapath=dp) as ex:
                    for n in batches:
                        ex.run(np.random.default_rng(n).random((n,) + tuple(g.input_shape), dtype=np.float32))
            continue
        fc = any(layer.op == "fc" for layer in g.weighted_layers())
        for sparse_fc in ((False, True) if fc else (False,)):
            with Executor(g, weights, threads=threads, sparse_fc=sparse_fc) as ex:
                for n in batches:
                    ex.run(np.random.default_rng(n).random((n,) + tuple(g.input_shape), dtype=np.float32))
    return len(jobs)
