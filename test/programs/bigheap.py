"""bigheap: a Python process with a large heap, for the e2e tests.

Fills a bytearray of N MiB (argv[1], default 200) with a pattern that differs
in every page, remembers its SHA-256, prints READY, then prints "tick N"
every 0.1 s. On SIGUSR1 it hashes the heap again and prints PASS (exit 0) or
FAIL (exit 1).
"""
import hashlib
import signal
import sys
import time

mib = int(sys.argv[1]) if len(sys.argv) > 1 else 200
data = bytearray(b"\xa5\x5a\x3c\xc3" * (mib << 18))
for off in range(0, len(data), 4096):
    data[off:off + 8] = off.to_bytes(8, "little")
digest = hashlib.sha256(data).hexdigest()

woken = []
signal.signal(signal.SIGUSR1, lambda sig, frame: woken.append(sig))
print("READY", flush=True)

tick = 0
while not woken:
    tick += 1
    print(f"tick {tick}", flush=True)
    time.sleep(0.1)

if hashlib.sha256(data).hexdigest() == digest and len(data) == mib << 20:
    print("PASS", flush=True)
    sys.exit(0)
print(f"FAIL: the {mib} MiB heap changed", flush=True)
sys.exit(1)
