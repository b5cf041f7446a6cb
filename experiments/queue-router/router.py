#!/usr/bin/python3
"""The delivery worker of a small mail router, for Murphy's queue experiments.

It moves messages from a Redis list (the queue at the gate) into PostgreSQL (the router's
database). Its settings come from a config file, read at start and again on SIGHUP.

  --ack     take each message with LMOVE into a processing list and remove it from there
            only once the database has it; on failure put it back on the queue
            (at-least-once: nothing accepted is lost)
  --no-ack  RPOP each message, then insert it; if the insert fails the message is gone
            (the naive worker)

This is the system under test, not part of Murphy.
"""
import argparse
import signal
import socket
import sys
import time

import psycopg2


def log(msg):
    print(f"router: {msg}", flush=True)


class Redis:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.buf = self.sock.makefile("rb")

    def call(self, *args):
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _reply(self):
        line = self.buf.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.buf.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"odd reply {line!r}")


def load(path):
    cfg = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                cfg[k.strip()] = v.strip()
    return cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--ack", action="store_true")
    mode.add_argument("--no-ack", action="store_true")
    args = ap.parse_args()

    reload = [False]
    signal.signal(signal.SIGHUP, lambda *_: reload.__setitem__(0, True))
    cfg = load(args.config)
    queue, processing = cfg["queue_key"], cfg["queue_key"] + ":processing"
    r = Redis(cfg["queue"])
    if args.ack:
        # Messages a previous run took but never delivered go back on the queue.
        while r.call("LMOVE", processing, queue, "LEFT", "RIGHT") is not None:
            pass
    db = None
    delivered = dropped = 0
    while True:
        if reload[0]:
            reload[0] = False
            cfg = load(args.config)
            db = None
            log(f"reloaded {args.config}")
        if args.ack:
            msg = r.call("LMOVE", queue, processing, "RIGHT", "LEFT")
        else:
            msg = r.call("RPOP", queue)
        if msg is None:
            time.sleep(0.02)
            continue
        try:
            if db is None:
                db = psycopg2.connect(cfg["database"])
                db.autocommit = True
                with db.cursor() as c:
                    c.execute(
                        "CREATE TABLE IF NOT EXISTS delivered "
                        "(v text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"
                    )
            with db.cursor() as c:
                c.execute(
                    "INSERT INTO delivered (v) VALUES (%s) ON CONFLICT DO NOTHING", (msg,)
                )
            if args.ack:
                r.call("LREM", processing, 1, msg)
            delivered += 1
        except Exception as e:  # the database is unreachable or refuses
            db = None
            if args.ack:
                r.call("LREM", processing, 1, msg)
                r.call("RPUSH", queue, msg)
                time.sleep(0.2)
            else:
                dropped += 1
                log(f"dropped {msg}: {str(e).strip().splitlines()[0]} ({dropped} dropped so far)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
