"""Imported by the fuzz harness's fork server: reads the real files the generators mutate, once,
before the workers fork (see :mod:`tests.fuzz_runner`)."""
from tests.fuzz_cases import material

material()
