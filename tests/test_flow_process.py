"""What every flow process shares, seen from the process itself."""

from __future__ import annotations

import subprocess
import sys

from flows import MALLOC_ARENAS

# Sixteen threads allocate at once (objects of 2 KB come from malloc, not Python's own
# allocator), then the process counts its malloc arenas: glibc maps each one it adds to a
# thread at a 64 MiB boundary.
COUNT_ARENAS = r"""
import sys, threading
if sys.argv[1] == "flows":
    import flows  # noqa: F401

ready = threading.Barrier(17)
done = threading.Event()

def work():
    kept = [bytes(2048) for _ in range(500)]
    ready.wait()
    done.wait()

threads = [threading.Thread(target=work) for _ in range(16)]
for thread in threads:
    thread.start()
ready.wait()
arenas = 0
for line in open("/proc/self/maps"):
    fields = line.split()
    start = int(fields[0].split("-")[0], 16)
    if len(fields) == 5 and fields[1] == "rw-p" and start % (64 << 20) == 0:
        arenas += 1
done.set()
print(arenas)
"""


def arenas_with(module: str, env: dict[str, str] | None = None) -> int:
    done = subprocess.run(
        [sys.executable, "-c", COUNT_ARENAS, module],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return int(done.stdout)


def test_a_flow_process_keeps_few_malloc_arenas_however_many_threads_allocate() -> None:
    import os

    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    assert arenas_with("plain", env) > MALLOC_ARENAS + 4  # glibc's default: one per thread
    # The main heap is not one of them: at most MALLOC_ARENAS - 1 more.
    assert arenas_with("flows", env) <= MALLOC_ARENAS - 1
    # A MALLOC_ARENA_MAX the owner set is left as it is.
    assert arenas_with("flows", {**env, "MALLOC_ARENA_MAX": "6"}) == 5
