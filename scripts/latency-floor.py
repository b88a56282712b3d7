#!/usr/bin/env python3
"""latency-floor.py - the machine's own latency floor for a request over a Unix socket.

Two processes (a forked echo server and this client) exchange one byte per request, paced at
RATE requests per second (open loop: a request is sent when it is due), and the round trips are
reported as p50 / p99 / p99.9 / max in milliseconds, with the CPU time the hypervisor took away
from this machine meanwhile (steal, from /proc/stat). Nothing here does work: what it measures is
how long the kernel, and on a virtual machine the host, take to wake a process that waits on a
socket. A Workload API fetch (scripts/bench-agent.sh) cannot have a lower tail than this on the
same machine (docs/performance.md, "mtls-agent").

Usage: scripts/latency-floor.py [--rate 1000] [--requests 10000]
"""
import argparse
import os
import socket
import tempfile
import time


def steal_ticks():
    with open("/proc/stat") as f:
        fields = f.readline().split()
    # cpu user nice system idle iowait irq softirq steal ...
    return sum(int(x) for x in fields[1:]), int(fields[8])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="requests per second (default 1000)")
    parser.add_argument("--requests", type=int, default=10000, help="requests in all (default 10000)")
    args = parser.parse_args()
    if args.rate < 1 or args.requests < 100:
        parser.error("--rate must be >= 1 and --requests >= 100")

    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "echo.sock")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(1)
        child = os.fork()
        if child == 0:
            conn, _ = server.accept()
            while data := conn.recv(64):
                conn.sendall(data)
            os._exit(0)
        server.close()
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        total0, steal0 = steal_ticks()
        samples = []
        due = time.perf_counter()
        for _ in range(args.requests):
            due += 1.0 / args.rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            start = time.perf_counter()
            client.sendall(b"x")
            if client.recv(64) != b"x":
                raise SystemExit("the echo server answered something else")
            samples.append(time.perf_counter() - start)
        total1, steal1 = steal_ticks()
        client.close()
        os.waitpid(child, 0)

    samples.sort()
    n = len(samples)
    ms = lambda q: samples[min(n - 1, int(n * q))] * 1e3  # noqa: E731
    steal = 100.0 * (steal1 - steal0) / max(1, total1 - total0)
    print(
        f"unix socket round trip, 2 processes, paced at {args.rate}/s, {n} requests: "
        f"p50 {ms(0.5):.3f} / p99 {ms(0.99):.3f} / p99.9 {ms(0.999):.3f} / "
        f"max {samples[-1] * 1e3:.3f} ms; steal {steal:.1f}% of the machine's CPU time"
    )


if __name__ == "__main__":
    main()
