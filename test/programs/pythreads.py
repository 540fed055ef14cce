"""pythreads: a Python process with four threads, for the e2e tests.

  sleeper   time.sleep(0.1) in a loop, counting; prints "tick N" each time
  waiter    blocked in threading.Event.wait()
  getter    blocked in queue.Queue.get()
  computer  a pure-Python loop (hashing), counting rounds

SIGUSR1 is blocked in every thread (the mask is set before the threads start
and inherited), so the main thread, which prints READY once all four run,
takes it with signal.sigwait(): no handler, no wake-up fd, no race with a
signal that comes early. On SIGUSR1 it checks that the sleeper and the
computer still count (their counters move on within 5 s), sets the event,
puts an item on the queue, stops the loops, joins every thread, checks what
each one saw and prints PASS (exit 0) or FAIL: ... (exit 1).
"""
import hashlib
import queue
import signal
import sys
import threading
import time

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})

stop = False
counts = {"sleeper": 0, "computer": 0}
results = {}
event = threading.Event()
items = queue.Queue()
started = threading.Barrier(5)


def sleeper():
    started.wait()
    while not stop:
        time.sleep(0.1)
        counts["sleeper"] += 1
        print(f"tick {counts['sleeper']}", flush=True)
    results["sleeper"] = counts["sleeper"] > 0


def waiter():
    started.wait()
    results["waiter"] = event.wait() and event.is_set()


def getter():
    started.wait()
    results["getter"] = items.get() == "wake up"


def computer():
    started.wait()
    h = b"cryo"
    while not stop:
        for _ in range(1000):
            h = hashlib.sha256(h).digest()
        counts["computer"] += 1
    results["computer"] = len(h) == 32


threads = [threading.Thread(target=f, name=f.__name__) for f in (sleeper, waiter, getter, computer)]
for t in threads:
    t.start()
started.wait()
print("READY", flush=True)

sig = signal.sigwait({signal.SIGUSR1})
problems = []
if sig != signal.SIGUSR1:
    problems.append(f"sigwait returned {sig}")

# The loops must still run: both counters move on.
before = dict(counts)
deadline = time.monotonic() + 5
while time.monotonic() < deadline and any(counts[k] == before[k] for k in counts):
    time.sleep(0.01)
for k in counts:
    if counts[k] == before[k]:
        problems.append(f"the {k} thread stopped counting at {before[k]}")

alive = [t.name for t in threads if t.is_alive()]
if alive != ["sleeper", "waiter", "getter", "computer"]:
    problems.append(f"threads alive before the wake-up: {alive}")

event.set()
items.put("wake up")
stop = True
for t in threads:
    t.join(10)
    if t.is_alive():
        problems.append(f"thread {t.name} did not end")
for name in ("sleeper", "waiter", "getter", "computer"):
    if results.get(name) is not True:
        problems.append(f"thread {name}: result {results.get(name)!r}")

if problems:
    print("FAIL: " + "; ".join(problems), flush=True)
    sys.exit(1)
print(f"counted {counts['sleeper']} ticks, {counts['computer']} rounds", flush=True)
print("PASS", flush=True)
sys.exit(0)
