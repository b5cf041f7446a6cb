#!/usr/bin/env python3
"""A web backend with a fixed capacity, for Murphy's cascade experiments.

`--workers` threads each serve one request at a time and every request takes
`--service-ms` (a sleep: capacity is workers * 1000 / service-ms requests per second,
independent of CPU speed). Health checks (GET /health) wait in the same queue as
requests, as in many real servers: a backend too busy to serve is also too busy to say
it is healthy. With `--store FILE`, every request (health checks included) appends a
line to FILE and fsyncs it: the service depends on its storage.
"""
import argparse
import os
import queue
import socket
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--address", required=True)
ap.add_argument("--port", type=int, default=8080)
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--service-ms", type=float, default=25.0)
ap.add_argument("--store")
args = ap.parse_args()

pending = queue.Queue()
store = open(args.store, "ab", buffering=0) if args.store else None
store_lock = threading.Lock()


def serve(conn):
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk
    time.sleep(args.service_ms / 1000.0)
    if store is not None:
        with store_lock:
            store.write(b"%f\n" % time.time())
            os.fsync(store.fileno())
    body = b"ok\n"
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (len(body), body)
    )


def worker():
    while True:
        conn = pending.get()
        try:
            serve(conn)
        except OSError:
            pass
        finally:
            conn.close()


for _ in range(args.workers):
    threading.Thread(target=worker, daemon=True).start()

srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((args.address, args.port))
srv.listen(1024)
while True:
    c, _ = srv.accept()
    pending.put(c)
