#!/usr/bin/env python3
"""A real full disk under the karma server (issue 10 item 2), by hand.

Needs root for a small tmpfs, which the caller mounts and unmounts:

    mkdir -p /mnt/karma-full && mount -t tmpfs -o size=1m tmpfs /mnt/karma-full
    python3 scripts/enospc-tmpfs.py target/debug/karma
    umount /mnt/karma-full

Starts karma (--wal-fsync=always) on /mnt/karma-full/data, writes, fills the
tmpfs with dd, keeps writing until the WAL gets ENOSPC, shows what a client
then sees (sum, snapshot.create, system.health), frees the space, writes
again, sends SIGTERM and restarts to compare the sum with the acknowledged
total. server/tests/wal_failure.rs checks the same in CI with an injected
ENOSPC; docs/testing.md records a run of this script.
"""
import json, os, signal, socket, subprocess, sys, time
BIN = sys.argv[1]; MNT = "/mnt/karma-full"; DATA = MNT + "/data"; PORT = 18555
def start():
    p = subprocess.Popen([BIN, "--bind=127.0.0.1", f"--port={PORT}", f"--directory={DATA}", "--log=false", "--wal-fsync=always"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            s = socket.create_connection(("127.0.0.1", PORT)); return p, s.makefile("rw")
        except OSError: time.sleep(0.02)
    raise SystemExit("no start")
def ask(f, obj):
    f.write(json.dumps(dict(v=2, **obj)) + "\n"); f.flush(); return json.loads(f.readline())
def inc(f, v): return ask(f, {"op": "counter.increment", "series": "s", "key": 1, "bucket": 20260101, "value": v})
def show(what, r): print(f"{what}: {json.dumps(r)}")
p, f = start()
acked = 0
r = inc(f, 5); show("increment 5", r); acked += 5 if r["success"] else 0
subprocess.run(["dd", "if=/dev/zero", f"of={MNT}/filler", "bs=4k"], stderr=subprocess.DEVNULL)
print("disk filled:", subprocess.run(["df", "-k", MNT], capture_output=True, text=True).stdout.splitlines()[1])
refused = 0
for i in range(200):
    r = inc(f, 1)
    if r["success"]: acked += 1
    else:
        refused += 1
        if refused == 1: show(f"increment 1 (attempt {i + 1}, first refused)", r)
print(f"200 increments of 1 on the full disk: {200 - refused} acknowledged, {refused} refused")
show("sum", ask(f, {"op": "counter.sum", "series": "s", "key": 1})); print("acknowledged total:", acked)
show("snapshot.create", ask(f, {"op": "snapshot.create", "series": "s"}))
show("system.health", ask(f, {"op": "system.health"}))
os.remove(f"{MNT}/filler"); print("filler removed")
r = inc(f, 1); show("increment 1", r); acked += 1 if r["success"] else 0
show("system.health", ask(f, {"op": "system.health"}))
show("sum", ask(f, {"op": "counter.sum", "series": "s", "key": 1})); print("acknowledged total:", acked)
p.send_signal(signal.SIGTERM); print("SIGTERM exit code:", p.wait())
p, f = start()
show("sum after restart", ask(f, {"op": "counter.sum", "series": "s", "key": 1}))
show("snapshot.verify", ask(f, {"op": "snapshot.verify"}))
p.send_signal(signal.SIGTERM); print("SIGTERM exit code:", p.wait())
