"""A stand-in for `karma` used by the client tests, in its own process (so
that its threads never compete with the test for the test's GIL).

    python fake_server.py barrier N   # answer nothing until N requests are
                                      # waiting on N connections, then answer
                                      # all; prints "arrived N" on stderr
    python fake_server.py silent      # accept, read, never answer (prints
                                      # "arrived" on stderr per request)
    python fake_server.py garbage     # answer every line with a non-v2 line

Prints its port on stdout first.
"""

import socket
import sys
import threading

OK = b'{"protocol_version":2,"success":true,"response":1,"error_code":null}\r\n'
BROKEN = (
    b'{"protocol_version":2,"success":false,'
    b'"response":"fake server: requests did not arrive together","error_code":"internal_error"}\r\n'
)


def main() -> None:
    mode = sys.argv[1]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    barrier = threading.Barrier(int(sys.argv[2])) if mode == "barrier" else None
    lock = threading.Lock()
    arrived = [0]

    def serve(conn: socket.socket) -> None:
        f = conn.makefile("rb")
        while True:
            line = f.readline()
            if not line:
                break
            if mode == "silent":
                sys.stderr.write("arrived\n")
                sys.stderr.flush()
                continue
            if mode == "garbage":
                conn.sendall(b"this is not a karma response\r\n")
                continue
            with lock:
                arrived[0] += 1
                sys.stderr.write(f"arrived {arrived[0]}\n")
                sys.stderr.flush()
            try:
                barrier.wait(timeout=10)
                conn.sendall(OK)
            except threading.BrokenBarrierError:
                conn.sendall(BROKEN)
        conn.close()

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
