#!/usr/bin/env python3
"""Kill -9 while trades are being appended, many times; after each restart
check the journal (tests/book_crash_writer.c does the appending and the facts):

  - every acknowledged trade is in the journal exactly once (no loss, no double,
    also for the trades retried with the same idempotency key after the kill);
  - no trade is half-applied (each buys calls and sells as many puts: the
    book's call and put quantities always cancel);
  - the book the service loads (snapshot + events) equals a replay from scratch.

usage: test_book_crash.py WRITER STORE_URL_OR_@FILE [KILLS] [THREADS]
Bounded: KILLS runs (default 50), each killed 5..80 ms after it is ready, and a
20 s limit on every wait.
"""
import os
import random
import signal
import subprocess
import sys
import time
import uuid


def store_url(arg):
    if arg.startswith("@"):
        with open(arg[1:]) as f:
            return f.read().strip()
    return arg


def run_once(writer, url, run, threads, retry, env):
    cmd = [writer, "write", url, str(run), str(threads)]
    if retry:
        cmd.append(",".join(retry))
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    lines = []
    deadline = time.monotonic() + 20
    while True:  # wait for READY (the retries are acknowledged before it)
        line = p.stdout.readline().decode()
        if not line:
            err = p.stderr.read().decode()
            sys.exit("run %d: the writer ended before READY: %s" % (run, err))
        if line.strip() == "READY":
            break
        lines.append(line)
        if time.monotonic() > deadline:
            p.kill()
            sys.exit("run %d: no READY within 20 s" % run)
    time.sleep(random.uniform(0.005, 0.08))
    p.send_signal(signal.SIGKILL)
    out, err = p.communicate(timeout=20)
    if p.returncode != -signal.SIGKILL:
        sys.exit("run %d: the writer exited by itself (%s): %s" % (run, p.returncode, err.decode()))
    lines += out.decode().splitlines()
    return [l.split()[1] for l in lines if l.startswith("ACK ")]


def verify(writer, url, env):
    out = subprocess.run([writer, "verify", url], capture_output=True, timeout=60, env=env)
    if out.returncode != 0:
        sys.exit("verify failed: " + out.stderr.decode())
    lines = out.stdout.decode().splitlines()
    words = lines[0].split()
    facts = dict(zip(words[0::2], map(int, words[1::2])))
    facts["why"] = out.stderr.decode().strip()
    return facts, set(lines[1:])


def in_flight(acked, run, threads):
    """The trade each thread of `run` would have sent after its last ack."""
    retry = []
    for t in range(threads):
        mine = [int(a.split("-")[2]) for a in acked if a.startswith("R%d-%d-" % (run, t))]
        retry.append("R%d-%d-%d" % (run, t, max(mine) + 1 if mine else 0))
    return retry


def main():
    writer, url = sys.argv[1], store_url(sys.argv[2])
    kills = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    seed = int(os.environ.get("GREEKS_CRASH_SEED", time.time_ns() % 1000000))
    random.seed(seed)
    env = dict(os.environ, GREEKS_CRASH_BOOK="crash-" + uuid.uuid4().hex[:12])
    print("seed %d, %d kills, %d threads, book %s" % (seed, kills, threads,
                                                      env["GREEKS_CRASH_BOOK"]))
    acked = set()
    retry = []
    for run in range(kills):
        got = run_once(writer, url, run, threads, retry, env)
        acked.update(got)
        facts, journal = verify(writer, url, env)
        lost = acked - journal
        if lost:
            sys.exit("run %d: %d acknowledged trades missing, e.g. %s" % (run, len(lost),
                                                                         sorted(lost)[:5]))
        if facts["duplicates"] or facts["unbalanced"] or not facts["equal"]:
            sys.exit("run %d: journal facts %s" % (run, facts))
        # a killed client's last COMMIT may still land (the server finishes it):
        # acknowledged trades are all there already; the next run retries the
        # in-flight ones by key, and the retry must come back once either way.
        retry = in_flight(got, run, threads)
    print("ok: %d kills, %d acknowledged trades, %d in the journal" % (kills, len(acked),
                                                                      facts["trades"]))


if __name__ == "__main__":
    main()
