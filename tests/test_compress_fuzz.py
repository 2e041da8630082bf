"""Bounded fuzzing of the two binary formats: truncated, bit-flipped and length-corrupted inputs
must give sqsim's FormatError (or, where the format has no redundancy, a model that still decodes
cleanly), never another exception, a crash or a hang.  About 4,000 inputs in all."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqsim.compress import compress, read_released
from sqsim.compress.sqz import SHA_BYTES, frame
from sqsim.compress.sqz import dumps as sqz_dumps
from sqsim.compress.sqz import loads as sqz_loads
from sqsim.errors import FormatError
from sqsim.ir import load
from sqsim.weights import he_init
from tests.conftest import ARCHS
from tests.test_compress_formats import NET, small_graph

FUZZ = settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

_G = small_graph()
SQZ = {h: sqz_dumps(compress(_G, he_init(_G, 2), huffman=h)) for h in (True, False)}


def sections(data: bytes) -> list[tuple[int, int]]:
    """(offset of the u64 length field, body length) of each section of a well-formed .sqz."""
    out, pos = [], 28
    while pos < len(data) - SHA_BYTES:
        (n,) = struct.unpack_from("<Q", data, pos)
        out.append((pos, n))
        pos += 8 + n + 4
    return out


def bodies(data: bytes) -> list[bytes]:
    return [data[p + 8: p + 8 + n] for p, n in sections(data)]


def exercise(model) -> None:
    """Everything a user of a loaded model may do: decode every stream, sizes, dense weights."""
    model.validate()
    model.decode()
    model.sizes()


def load_or_format_error(loader) -> bool:
    try:
        exercise(loader())
    except FormatError:
        return False
    return True


# --- .sqz: checksummed, so every change is caught ------------------------------------------------------
@FUZZ
@given(st.booleans(), st.data())
def test_sqz_truncated(huff, data):
    raw = SQZ[huff]
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(FormatError):
        sqz_loads(raw[:cut], "fuzz.sqz")


@FUZZ
@given(st.booleans(), st.data())
def test_sqz_bit_flips(huff, data):
    raw = bytearray(SQZ[huff])
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 7)), min_size=1, max_size=8,
                               unique_by=lambda t: t))
    for pos, bit in flips:
        raw[pos] ^= 1 << bit
    with pytest.raises(FormatError):
        sqz_loads(bytes(raw), "fuzz.sqz")


@FUZZ
@given(st.booleans(), st.data())
def test_sqz_length_fields_corrupted(huff, data):
    raw = bytearray(SQZ[huff])
    fields = [16] + [p for p, _ in sections(bytes(raw))]          # header file length, section lengths
    pos = data.draw(st.sampled_from(fields))
    (old,) = struct.unpack_from("<Q", raw, pos)
    new = data.draw(st.one_of(st.integers(0, 2 ** 64 - 1), st.integers(max(0, old - 64), old + 64)))
    if new == old:
        new ^= 1
    struct.pack_into("<Q", raw, pos, new)
    with pytest.raises(FormatError):
        sqz_loads(bytes(raw), "fuzz.sqz")


# --- .sqz re-sealed: valid checksums around corrupted contents reach the field checks -----------------
mutation = st.sampled_from(["flip", "truncate", "u64", "u32", "u8", "insert"])


@settings(FUZZ, max_examples=800)
@given(st.booleans(), st.data())
def test_sqz_resealed_corruption(huff, data):
    parts = bodies(SQZ[huff])
    i = data.draw(st.integers(0, len(parts) - 1))
    body = bytearray(parts[i])
    kind = data.draw(mutation)
    at = data.draw(st.integers(0, max(0, len(body) - 1)))
    if kind == "flip":
        body[at] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        del body[at:]
    elif kind == "insert":
        body[at:at] = data.draw(st.binary(min_size=1, max_size=9))
    else:
        width = {"u64": 8, "u32": 4, "u8": 1}[kind]
        at = min(at, max(0, len(body) - width))
        top = 2 ** (8 * width) - 1
        value = data.draw(st.one_of(st.integers(0, top), st.integers(0, min(top, 300))))
        body[at:at + width] = value.to_bytes(width, "little")[: len(body) - at]
    parts[i] = bytes(body)
    resealed = frame(parts[0], parts[1:])
    load_or_format_error(lambda: sqz_loads(resealed, "fuzz.sqz"))


# --- the released .net: no checksum; length and range checks -----------------------------------------
@pytest.fixture(scope="module")
def net():
    from sqsim.paths import shared_data, shared_data_missing_reason
    p = shared_data(*NET)
    if p is None:
        pytest.skip(shared_data_missing_reason(*NET))
    return p.read_bytes(), load(ARCHS / "squeezenet.yaml")


@settings(FUZZ, max_examples=400)
@given(st.data())
def test_net_truncated(net, data):
    raw, graph = net
    cut = data.draw(st.one_of(st.integers(0, len(raw) - 1), st.integers(len(raw) - 2000, len(raw) - 1)))
    with pytest.raises(FormatError):
        read_released(raw[:cut], graph, "fuzz.net")


@settings(FUZZ, max_examples=400)
@given(st.data())
def test_net_counts_corrupted(net, data):
    raw, graph = bytearray(net[0]), net[1]
    counts = np.frombuffer(bytes(raw[:104]), "<u4").astype(np.int64)
    i, j = data.draw(st.integers(0, 25)), data.draw(st.integers(0, 25))
    delta = data.draw(st.integers(-5000, 5000).filter(bool))
    counts[i] += delta
    shifted = data.draw(st.booleans()) and i != j
    if shifted:
        counts[j] -= delta              # keep the total: layer boundaries shift, the length may still match
    raw[:104] = (counts % 2 ** 32).astype("<u4").tobytes()
    ok = load_or_format_error(lambda: read_released(bytes(raw), graph, "fuzz.net"))
    assert shifted or not ok            # one count changed: the file length no longer matches


@settings(FUZZ, max_examples=600)
@given(st.data())
def test_net_bit_flips(net, data):
    raw, graph = bytearray(net[0]), net[1]
    for pos, bit in data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 7)), min_size=1,
                                       max_size=6)):
        raw[pos] ^= 1 << bit
    load_or_format_error(lambda: read_released(bytes(raw), graph, "fuzz.net"))
