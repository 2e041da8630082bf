"""Image loading and preprocessing for classification (Pillow), Caffe's by default.

Caffe's ImageNet models expect: the shorter side resized to 256 (aspect kept), a centre crop of the
network's input size (227 for SqueezeNet and AlexNet), channels in BGR order, the per-channel mean
B=104, G=117, R=123 subtracted, no scaling (REFERENCE.md section 3).

An image that already has the crop size (such as the 227x227 ``red_panda.png``) is taken as it is by
default: resizing it to 256 and cropping back to 227 would enlarge it by 13% and cut about 6% from each
border, and it would no longer match published results on that image (REFERENCE.md section 4 gives
the OpenVINO v1.1 top-5 for the image as it is).  ``crop_sized_as_is=False`` resizes every image.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError, SpecError, short
from ..limits import check, check_file, check_memory

CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a network input.

    Attributes
    ----------
    crop : tuple of int or None
        ``(height, width)`` of the centre crop, normally the network's input size; None: no crop.
    resize : int
        Shorter side after resizing (bilinear, aspect kept); 0: no resize.
    crop_sized_as_is : bool
        Take an image that already has the crop size without resizing it.
    bgr : bool
        Reorder RGB to BGR (Caffe models).
    mean : tuple of float
        Subtracted per channel, in the network's channel order.
    scale : float
        Multiplies the mean-subtracted values.
    """
    crop: tuple | None = (227, 227)
    resize: int = 256
    crop_sized_as_is: bool = True
    bgr: bool = True
    mean: tuple = CAFFE_MEAN_BGR
    scale: float = 1.0

    def __post_init__(self):
        if isinstance(self.resize, bool) or not isinstance(self.resize, int) or self.resize < 0:
            raise SpecError(f"preprocessing: resize must be an integer >= 0, got {short(self.resize)}")
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) <= 0):
            raise SpecError(f"preprocessing: crop must be (height, width) > 0, got {short(self.crop)}")
        if self.crop is not None:
            check("image_pixels", self.crop[0] * self.crop[1], f"preprocessing: crop {self.crop[1]}x{self.crop[0]}",
                  " pixels")
        if len(self.mean) not in (1, 3):
            raise SpecError(f"preprocessing: mean needs 1 or 3 values, got {len(self.mean)}")
        try:
            finite = bool(np.all(np.isfinite(np.asarray(self.mean, dtype=np.float64))))
        except (TypeError, ValueError):
            finite = False
        if not finite:
            raise SpecError(f"preprocessing: mean values must be finite numbers, got {short(self.mean)}")
        if not np.isfinite(self.scale) or self.scale == 0:
            raise SpecError(f"preprocessing: scale must be a finite non-zero number, got {self.scale}")

    def __call__(self, path) -> np.ndarray:
        """The image at ``path`` as a float32 ``(3, H, W)`` array."""
        return self.array(load_rgb(path), source=str(path))

    def array(self, rgb: np.ndarray, source: str = "image") -> np.ndarray:
        """Preprocess an ``(H, W, 3)`` uint8 RGB array."""
        from PIL import Image
        img = Image.fromarray(rgb)
        w, h = img.size
        as_is = self.crop_sized_as_is and self.crop is not None and (h, w) == tuple(self.crop)
        if self.resize and not as_is:
            s = self.resize / min(w, h)
            size = (max(1, round(w * s)), max(1, round(h * s)))
            # bounded before allocating: a 2 x 100000 image resized to a shorter side of 256 is 3.3e9 pixels
            check("image_pixels", size[0] * size[1], f"{source}: resizing the {w}x{h} image to {size[0]}x{size[1]} "
                  f"(shorter side {self.resize})", " pixels")
            check_memory(4 * size[0] * size[1], f"{source}: resizing the image to {size[0]}x{size[1]}")
            img = img.resize(size, Image.BILINEAR)
        if self.crop is not None:
            ch, cw = self.crop
            w, h = img.size
            if w < cw or h < ch:
                raise SpecError(f"{source}: image is {w}x{h} (width x height), smaller than the {cw}x{ch} crop "
                                f"(resize it: --resize N)")
            left, top = (w - cw) // 2, (h - ch) // 2
            img = img.crop((left, top, left + cw, top + ch))
        x = np.asarray(img, dtype=np.float32)
        if self.bgr:
            x = x[:, :, ::-1]
        x = (x - np.asarray(self.mean, np.float32)) * np.float32(self.scale)
        return np.ascontiguousarray(x.transpose(2, 0, 1))


def load_rgb(path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (alpha dropped, greyscale expanded).

    Raises
    ------
    FormatError
        The file is missing or not an image Pillow can read.
    """
    from PIL import Image, UnidentifiedImageError
    path = Path(path)
    check_file(path, "binary")
    try:
        with Image.open(path) as im:
            w, h = im.size   # from the header: checked before any pixel is decoded
            check("image_pixels", w * h, f"{path}: image of {w}x{h}", " pixels")
            check_memory(4 * w * h, f"{path}: decoding the {w}x{h} image")
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8)  # RGBA: alpha dropped, colours as stored
    except FileNotFoundError:
        raise FormatError(f"{path}: no such image file") from None
    except Image.DecompressionBombError as e:
        raise FormatError(f"{path}: image too large ({e})") from None
    except IsADirectoryError:
        raise FormatError(f"{path}: is a directory, not an image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        raise FormatError(f"{path}: cannot read image ({short(str(e), 200)})") from None


def read_labels(path, classes: int | None = None) -> list[str]:
    """Class names, one per line, in class-index order.

    Accepts Caffe's ``synset_words.txt`` (``n01440764 tench, Tinca tinca``: the WordNet id is dropped
    and the first name kept) or plain one-name-per-line files.

    Raises
    ------
    FormatError
        Unreadable file, or a line count different from ``classes``.
    """
    import re
    from ..paths import read_text
    path = Path(path)
    lines = read_text(path, "labels file", FormatError).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    labels = []
    for line in lines:
        line = re.sub(r"^n\d{8}\s+", "", line.strip())
        labels.append(line.split(",")[0].strip())
    if classes is not None and len(labels) != classes:
        raise FormatError(f"{path}: {len(labels)} labels, but the model has {classes} classes")
    return labels
