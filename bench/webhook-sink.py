#!/usr/bin/env python3
"""A branch office's webhook endpoint for `kefu bench --webhook-url`: answers every POST with 204
at once and prints, every 5 seconds, how many deliveries arrived and how many were repeats of a
delivery id already seen (at least once means some may be).

    python3 bench/webhook-sink.py 8099   # then: kefu bench --webhook-url http://127.0.0.1:8099/events
"""
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen = set()
counts = {"received": 0, "repeats": 0}
lock = threading.Lock()


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        delivery = self.headers.get("kefu-delivery", "")
        with lock:
            counts["received"] += 1
            if delivery in seen:
                counts["repeats"] += 1
            seen.add(delivery)
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def report():
    while True:
        time.sleep(5)
        with lock:
            print(f"received {counts['received']} deliveries, {counts['repeats']} repeats", flush=True)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8099
    threading.Thread(target=report, daemon=True).start()
    print(f"webhook sink on http://127.0.0.1:{port}/events", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()
