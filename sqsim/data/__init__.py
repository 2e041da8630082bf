"""Data files shipped with sqsim.

``imagenet_synset_words.txt``: the 1000 ImageNet (ILSVRC 2012) classes in the class-index order of
Caffe's and ONNX's ImageNet models, one ``wnid name, synonyms`` line each (Caffe's ``synset_words.txt``
format).  Source: the ONNX Model Zoo, github.com/onnx/models, file
``validated/vision/classification/synset.txt`` at commit b1eeaa1ac722dcc1cd1a8284bde34393dab61c3d,
Apache License 2.0 (the names themselves are WordNet's).  See ``NOTICE.md`` beside this file.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

IMAGENET_CLASSES = 1000


def imagenet_synsets_path():
    """The shipped synset list (a :class:`importlib.resources` traversable, readable as a path)."""
    return resources.files(__name__) / "imagenet_synset_words.txt"


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet class names in class-index order (the first name of each synset line, as
    :func:`sqsim.exec.preprocess.read_labels` reads ``synset_words.txt``)."""
    from ..exec.preprocess import read_labels
    with resources.as_file(imagenet_synsets_path()) as path:
        return tuple(read_labels(path, IMAGENET_CLASSES))
