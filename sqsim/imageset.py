"""Test images for measuring a datapath: the shared images plus deterministic crops and flips of public-domain
sample photographs that installed packages ship.

Sources (name, file, licence):

==============  =========================================================  =========================================
``shared``      ``red_panda.png``, ``chelsea.png`` in the shared data       Apache-2.0; CC0 (REFERENCE.md section 4)
``matplotlib``  ``grace_hopper.jpg`` (``matplotlib.cbook.get_sample_data``) public domain: an official U.S. Navy
                                                                            photograph of Grace Hopper (matplotlib PR
                                                                            #1599 added it as a public-domain image)
``skimage``     ``astronaut.png``, ``coffee.png``, ``rocket.jpg`` shipped  public domain (NASA); CC0 (Rachel Michetti);
                in scikit-image's ``skimage/data`` (optional: ``pip install public domain (SpaceX), per the
                'sqsim[images]'``)                                          docstrings of ``skimage.data``
==============  =========================================================  =========================================

``image_set(n)`` lists every base image as it is first, then views of each in turn (:data:`VIEWS`: a square or
rectangular crop of a fraction of the image at a fixed anchor, mirrored or not), so the set is the same on
every machine with the same sources.  The images are RGB ``uint8``; preprocess them as for any input
(``sqsim.exec.preprocess``).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SqsimError
from .paths import shared_data

SOURCES = ("shared", "matplotlib", "skimage")
DEFAULT_SOURCES = ("shared", "matplotlib")
_BASES = {
    "shared": [("red_panda", ("images", "red_panda.png"), "Apache-2.0"),
               ("chelsea", ("images", "chelsea.png"), "CC0-1.0")],
    "matplotlib": [("grace_hopper", "grace_hopper.jpg", "public domain (U.S. Navy photograph)")],
    "skimage": [("astronaut", "astronaut.png", "public domain (NASA)"),
                ("coffee", "coffee.png", "CC0-1.0 (Rachel Michetti)"),
                ("rocket", "rocket.jpg", "public domain (SpaceX)")],
}
# (fraction of each side kept, anchor, mirrored): the views after the image itself.
VIEWS = [(1.0, "c", True), (0.8, "c", False), (0.8, "c", True), (0.7, "tl", False), (0.7, "br", True),
         (0.7, "tr", False), (0.7, "bl", True), (0.6, "c", False), (0.6, "c", True), (0.85, "t", False),
         (0.85, "b", True), (0.75, "l", False), (0.75, "r", True), (0.5, "c", False), (0.9, "tl", True)]


@dataclass(frozen=True, eq=False)
class SampleImage:
    """One image of a set: ``name`` (base and view), where it came from and its licence, ``rgb (H, W, 3)``."""
    name: str
    source: str
    licence: str
    rgb: np.ndarray


def base_images(sources=DEFAULT_SOURCES) -> list[tuple[str, Path, str]]:
    """``[(name, path, licence)]`` of the base images the given sources hold on this machine.

    Raises
    ------
    SqsimError
        An unknown source, or one that is not available (the shared data or scikit-image missing).
    """
    out = []
    for src in sources:
        if src not in SOURCES:
            raise SqsimError(f"image source {src!r} is unknown (expected one of {', '.join(SOURCES)})")
        for name, where, licence in _BASES[src]:
            path = _locate(src, where)
            if path is None:
                raise SqsimError(f"image source {src!r}: {name} not found ({_missing_hint(src)})")
            out.append((name, path, licence))
    return out


def _locate(src: str, where) -> Path | None:
    if src == "shared":
        return shared_data(*where)
    if src == "matplotlib":
        import matplotlib
        p = Path(matplotlib.get_data_path()) / "sample_data" / where
        return p if p.exists() else None
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "data" / where
    return p if p.exists() else None


def _missing_hint(src: str) -> str:
    if src == "shared":
        return "set SQSIM_SHARED_DATA to the folder holding sqsim's shared data"
    if src == "skimage":
        return "pip install 'sqsim[images]' (scikit-image)"
    return "matplotlib's sample data is not installed"


def view(rgb: np.ndarray, frac: float, anchor: str, mirror: bool) -> np.ndarray:
    """A crop of ``frac`` of each side of ``rgb`` at ``anchor`` (``c``, ``t``, ``b``, ``l``, ``r`` or a
    corner ``tl``, ``tr``, ``bl``, ``br``), mirrored left-right if ``mirror``."""
    h, w = rgb.shape[:2]
    ch, cw = max(1, round(h * frac)), max(1, round(w * frac))
    top = {"t": 0, "b": h - ch}.get(anchor[0], (h - ch) // 2) if anchor != "c" else (h - ch) // 2
    if anchor in ("l", "r"):
        top = (h - ch) // 2
    left = (w - cw) // 2
    if anchor[-1] in ("l", "r") and anchor != "c":
        left = 0 if anchor[-1] == "l" else w - cw
    out = rgb[top:top + ch, left:left + cw]
    return np.ascontiguousarray(out[:, ::-1] if mirror else out)


def image_set(n: int, sources=DEFAULT_SOURCES) -> list[SampleImage]:
    """``n`` images: every base image as it is, then :data:`VIEWS` of each in turn.

    Raises
    ------
    SqsimError
        ``n`` below 1 or above what the sources give (``len(bases) * (1 + len(VIEWS))``).
    """
    from .exec.preprocess import load_rgb
    bases = base_images(sources)
    most = len(bases) * (1 + len(VIEWS))
    if not 1 <= n <= most:
        raise SqsimError(f"image set: {n} images asked; the sources {', '.join(sources)} give 1..{most}")
    loaded = {}
    out = []
    for i in range(n):
        v, b = divmod(i, len(bases))
        name, path, licence = bases[b]
        if name not in loaded:
            loaded[name] = load_rgb(path)
        rgb = loaded[name]
        if v == 0:
            out.append(SampleImage(name, str(path), licence, rgb))
            continue
        frac, anchor, mirror = VIEWS[v - 1]
        label = f"{name}_{int(frac * 100)}{anchor}{'_mirror' if mirror else ''}"
        out.append(SampleImage(label, str(path), licence, view(rgb, frac, anchor, mirror)))
    return out


def write_image_set(folder, n: int, sources=DEFAULT_SOURCES) -> list[Path]:
    """Write :func:`image_set` as PNG files ``NN_name.png`` into ``folder`` (created; each file written to a
    temporary name and renamed) and a ``SOURCES.txt`` naming each image's origin and licence."""
    import io

    from PIL import Image

    from .paths import atomic_write_bytes, atomic_write_text
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths, lines = [], ["image\tsource\tlicence"]
    for i, im in enumerate(image_set(n, sources)):
        buf = io.BytesIO()
        Image.fromarray(im.rgb).save(buf, format="PNG")
        p = folder / f"{i:02d}_{im.name}.png"
        atomic_write_bytes(p, buf.getvalue())
        paths.append(p)
        lines.append(f"{p.name}\t{im.source}\t{im.licence}")
    atomic_write_text(folder / "SOURCES.txt", "\n".join(lines) + "\n")
    return paths
