"""Prints N TCP ports on 127.0.0.1 that were free a moment ago: free_ports.py [N (default 1)].

The ports lie below the kernel's ephemeral range: a port bound to 0 and released can become the
local port of an outgoing connection (a demo or benchmark makes many) before its server binds
it; a port below the range never does. Each is checked by a bind. Used by scripts/demo and
bench/gateway/lib.sh (the C++ tests' FreePort does the same: tests/support/test_support.cc).
"""
import random
import socket
import sys

FIRST = 10000


def can_bind(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def main():
    wanted = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    ports = []
    if low - FIRST >= 1000:
        candidates = list(range(FIRST, low))
        random.shuffle(candidates)
        ports = [p for p in candidates[: wanted * 50] if can_bind(p)][:wanted]
    held = []
    while len(ports) < wanted:  # an unusual range: ports the kernel picks
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)
        ports.append(s.getsockname()[1])
    print(" ".join(str(p) for p in ports))


if __name__ == "__main__":
    main()
