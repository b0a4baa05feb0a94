"""Password hashing: production keeps argon2's strong default; the suite hashes cheaply.

tests/conftest.py swaps in cheap argon2 parameters (``passwords.use_hasher``) because every
user a test creates costs one hash; these tests pin what a process that never swaps gets.
"""

from __future__ import annotations

import subprocess
import sys

from argon2 import PasswordHasher, Type, extract_parameters

from jarvis.auth.users import passwords
from tests.conftest import TEST_HASHER

PASSWORD = "correct horse battery"


def test_the_production_default_is_argon2id_at_rfc_9106_low_memory_cost() -> None:
    default = passwords.DEFAULT_HASHER
    assert default.type is Type.ID
    # OWASP's floor is m=19 MiB, t=2; the default stays well above it.
    assert default.time_cost >= 3
    assert default.memory_cost >= 64 * 1024  # KiB
    assert default.parallelism >= 1


def test_a_process_that_does_not_swap_the_hasher_hashes_at_the_default_cost() -> None:
    """What `jarvis serve` and the CLI do: import the module and hash."""
    code = (
        "from jarvis.auth.users.passwords import hash_password, _DUMMY_HASH; "
        f"print(hash_password({PASSWORD!r})); print(_DUMMY_HASH)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    made, dummy = done.stdout.split()
    for encoded in (made, dummy):
        params = extract_parameters(encoded)
        assert params.type is Type.ID
        assert params.time_cost == passwords.DEFAULT_HASHER.time_cost
        assert params.memory_cost == passwords.DEFAULT_HASHER.memory_cost
        assert params.parallelism == passwords.DEFAULT_HASHER.parallelism
    assert passwords.verify_password(made, PASSWORD)


def test_the_suite_hashes_cheaply_and_the_dummy_hash_follows() -> None:
    assert passwords._hasher is TEST_HASHER
    params = extract_parameters(passwords.hash_password(PASSWORD))
    assert (params.time_cost, params.memory_cost) == (TEST_HASHER.time_cost, 1024)
    dummy = extract_parameters(passwords._DUMMY_HASH)
    assert (dummy.time_cost, dummy.memory_cost) == (TEST_HASHER.time_cost, 1024)


def test_hashes_of_either_cost_verify_whichever_hasher_is_in_use() -> None:
    """Parameters travel in the hash: a stored production hash still verifies after a swap,
    and a cheap one under the default."""
    strong = passwords.DEFAULT_HASHER.hash(PASSWORD)
    cheap = passwords.hash_password(PASSWORD)
    assert passwords.verify_password(strong, PASSWORD)
    assert not passwords.verify_password(strong, PASSWORD + "!")
    other = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    passwords.use_hasher(other)
    try:
        assert passwords.verify_password(cheap, PASSWORD)
        assert passwords.verify_password(strong, PASSWORD)
        assert extract_parameters(passwords.hash_password(PASSWORD)).memory_cost == 2048
        assert extract_parameters(passwords._DUMMY_HASH).memory_cost == 2048
        assert not passwords.verify_password(None, PASSWORD)
    finally:
        passwords.use_hasher(TEST_HASHER)
