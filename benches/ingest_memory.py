"""Memory of uncommitted ingest streams under the bounds of docs/limits.md.

Starts the given `karma` binary (server on core 1; run this script on core 0)
with default options, opens 10,000 ingest streams (the default
--ingest-max-streams), checks that one more is refused, aborts them, then
stages 1,050,000 items (each a distinct key) in 10 replace_series streams,
printing the RSS growth of each step.

    taskset -c 0 python3 benches/ingest_memory.py target/release/karma
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
port = 18000 + os.getpid() % 1000
d = tempfile.mkdtemp()
p = subprocess.Popen(["taskset", "-c", "1", BIN, "--bind=127.0.0.1", f"--port={port}", f"--directory={d}", "--log=false", "--wal-fsync=false"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1]) * 1024
for _ in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", port)); break
    except OSError: time.sleep(0.05)
f = s.makefile("rb")
def pipeline(lines, batch=500):
    answers = []
    for i in range(0, len(lines), batch):
        s.sendall(b"".join(l.encode() + b"\n" for l in lines[i:i+batch]))
        for _ in lines[i:i+batch]:
            answers.append(f.readline())
    return answers
time.sleep(0.5)
base = rss()
n = 10000
a = pipeline([f'{{"v":2,"op":"ingest.begin","stream_id":"s{i:06d}","mode":"add"}}' for i in range(n)])
assert all(b'"success":true' in x for x in a), a[-1]
after_begin = rss()
over = pipeline(['{"v":2,"op":"ingest.begin","stream_id":"over","mode":"add"}'])[0]
print(f"{n} begins: RSS +{(after_begin-base)/2**20:.1f} MiB ({(after_begin-base)/n:.0f} B/stream); stream {n+1}: {over.decode().strip()}")
pipeline([f'{{"v":2,"op":"ingest.abort","stream_id":"s{i:06d}"}}' for i in range(n)])
base2 = rss()
streams, chunks, per = 10, 700, 150
lines = [f'{{"v":2,"op":"ingest.begin","stream_id":"r{j}","mode":"replace_series"}}' for j in range(streams)]
for j in range(streams):
    for c in range(chunks):
        items = ",".join(f"[{c*per+k},20260101,{k+1}]" for k in range(per))
        lines.append(f'{{"v":2,"op":"ingest.chunk","stream_id":"r{j}","series":"t{j}","chunk_seq":{c+1},"items":[{items}]}}')
a = pipeline(lines)
bad = [x for x in a if b'"success":true' not in x]
assert not bad, bad[0]
staged = streams*chunks*per
after = rss()
print(f"{staged} staged items in {streams} replace_series streams: RSS +{(after-base2)/2**20:.1f} MiB ({(after-base2)/staged:.1f} B/item)")
p.terminate()
p.wait()
shutil.rmtree(d, ignore_errors=True)
