"""argon2id hashing and verification of passwords, each in a short-lived child process.

argon2id touches `memory_cost` (19 MiB) for every hash and every verification. malloc gives it back at
once, but the process that ran it keeps it in its peak resident size (VmHWM), and the controller hashes
at every first start (the first admin) and verifies at every login: that alone put the True PACS
template's peak above its 90 MB goal (bench/README.md, "The controller's performance"). A child process
(`python -I`, argon2 only: about 30 MB, 0.1-0.2 s to start) holds that memory instead and gives all of
it back when it exits; a login takes that much longer, and logins are throttled anyway.

The password goes to the child on its stdin, never on its command line (which `ps` shows to every user).
The parameters are argon2-cffi's RFC 9106 / OWASP choice that pacslb has always used; `check_needs_rehash`
reads them from a stored hash (no hashing, no memory) and stays in the caller's process.
"""

from __future__ import annotations

import json
import subprocess
import sys

from argon2 import PasswordHasher

TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1
CHILD_TIMEOUT_S = 60.0  # a hash takes about 0.1 s of CPU; a loaded machine may take seconds to start Python
MAX_PASSWORD_BYTES = 4096  # longer is refused before any child starts (check_password allows far less)

# The hash to verify against for an unknown user, so that a login for a missing user costs as much as a
# wrong password: of a random password nobody kept, under the parameters above (a unit test says so).
# A constant, not one made at each start: making it was one more 19 MiB hash in the controller.
DUMMY_HASH = "$argon2id$v=19$m=19456,t=2,p=1$1j3jkpYUzlL5RiQBQWaVTA$9m79WGXDgqSNxMDYiByjIWle2/xeklbIkdCkgaqYSs4"

_hasher = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM)

_CHILD = """
import json, sys
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
request = json.load(sys.stdin)
hasher = PasswordHasher(time_cost=request["t"], memory_cost=request["m"], parallelism=request["p"])
if request["op"] == "hash":
    answer = {"hash": hasher.hash(request["password"])}
else:
    try:
        answer = {"ok": hasher.verify(request["hash"], request["password"])}
    except (InvalidHashError, VerificationError, VerifyMismatchError):
        answer = {"ok": False}
json.dump(answer, sys.stdout)
"""


class PasswordHashError(RuntimeError):
    """The child process could not hash or verify (it failed, or did not answer in time): nothing was decided."""


def _child(request: dict) -> dict:
    if len(request["password"].encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        raise PasswordHashError(f"a password of more than {MAX_PASSWORD_BYTES} bytes is not hashed")
    body = json.dumps({**request, "t": TIME_COST, "m": MEMORY_COST_KIB, "p": PARALLELISM})
    try:
        done = subprocess.run([sys.executable, "-I", "-c", _CHILD], input=body, capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT_S, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PasswordHashError(f"the password hashing process did not answer: {exc}") from None
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise PasswordHashError(f"the password hashing process failed: {why[0]}")
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise PasswordHashError("the password hashing process answered something that is not JSON") from None


def hash_password(password: str) -> str:
    """The argon2id hash of `password` (encoded, with its salt and parameters), made in a child process."""
    return str(_child({"op": "hash", "password": password})["hash"])


def verify_password(stored: str, password: str) -> bool:
    """Whether `password` matches the encoded hash `stored` (False for a malformed hash), checked in a child process."""
    return bool(_child({"op": "verify", "hash": stored, "password": password})["ok"])


def needs_rehash(stored: str) -> bool:
    """Whether `stored` was made with other parameters than today's (read from the hash: nothing is hashed)."""
    return _hasher.check_needs_rehash(stored)
