#!/usr/bin/python3
"""sg-load's --csv files read with Locust's own expectations (Debian's python3-locust).

Runs the real sg-load against a small HTTP server on 127.0.0.1 (200 on /ok, 503 on /fail), then
checks the four files against Locust's stats module: the header lists of StatsCSV and
StatsCSVFileWriter (so a Locust upgrade that changes them fails here), the Aggregated row last,
the history's rows per second (with --csv-full-history, a row per endpoint each second too), and
the failure text that Locust's requests-based client would record for the same 503 (built with
requests and StatsError.parse_error themselves).

Usage: locust_csv_test.py SG_LOAD  (exit 0: all checks passed)
"""
import csv
import http.server
import os
import subprocess
import sys
import tempfile
import threading

FAILED = []


def check(condition, what):
    if not condition:
        FAILED.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        status, body = (503, b"busy") if self.path.startswith("/fail") else (200, b"ok")
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def run(sg_load, url, corpus, prefix, *extra):
    args = [sg_load, "--url", url, "--corpus", corpus, "--csv", prefix, "--no-progress", *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def main():
    sg_load = sys.argv[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus")
        os.mkdir(corpus)
        with open(os.path.join(corpus, "a__x.bin"), "wb") as f:
            f.write(b"body")
        # 2.5 s at 20 req/s: history rows at the start, each second, and after the last request.
        full = os.path.join(tmp, "full")
        ok = run(sg_load, f"http://127.0.0.1:{port}/ok?x=1", corpus, full, "--rate", "20",
                 "--duration", "2.5", "--csv-full-history")
        check(ok.returncode == 0, f"sg-load /ok exit {ok.returncode}: {ok.stderr}")
        fail = os.path.join(tmp, "fail")
        failed = run(sg_load, f"http://127.0.0.1:{port}/fail", corpus, fail, "-n", "5")
        check(failed.returncode == 1, f"sg-load /fail exit {failed.returncode}: {failed.stderr}")
        server.shutdown()

        # Locust is imported only now: importing it monkey-patches sockets and threads (gevent).
        from locust.stats import (PERCENTILES_TO_REPORT, StatsCSV, StatsCSVFileWriter,
                                  StatsError)
        import requests

        plain = StatsCSV(None, PERCENTILES_TO_REPORT)
        writer = StatsCSVFileWriter(None, PERCENTILES_TO_REPORT, os.path.join(tmp, "locust"),
                                    full_history=True)
        writer.close_files()
        for prefix in (full, fail):
            stats = read(prefix + "_stats.csv")
            check(stats[0] == plain.requests_csv_columns, f"{prefix}_stats.csv header {stats[0]}")
            check(stats[-1][:2] == ["", "Aggregated"], f"{prefix}_stats.csv last row {stats[-1]}")
            check(read(prefix + "_failures.csv")[0] == plain.failures_columns,
                  f"{prefix}_failures.csv header")
            check(read(prefix + "_exceptions.csv") == [plain.exceptions_columns],
                  f"{prefix}_exceptions.csv: Locust's header and no rows")
            history = read(prefix + "_stats_history.csv")
            check(history[0] == writer.stats_history_csv_columns,
                  f"{prefix}_stats_history.csv header {history[0]}")
            for row in stats[1:] + history[1:]:
                check(len(row) == len(stats[0]) or len(row) == len(history[0]), f"width: {row}")

        # The stats rows as a Locust pipeline reads them: DictReader and numbers.
        with open(full + "_stats.csv", newline="") as f:
            rows = {r["Name"]: r for r in csv.DictReader(f)}
        total = rows["Aggregated"]
        count = int(total["Request Count"])
        # Due at 0, 50 ms, ..., 2450 ms: 50 requests.
        check(count == int(rows["/ok?x=1"]["Request Count"]) == 50, f"requests {count}")
        check(int(total["Failure Count"]) == 0, "no failures on /ok")
        for column in plain.requests_csv_columns[4:]:
            float(total[column])  # raises on a non-number

        # History: Locust's rows each second; with full history the endpoint's row, then the
        # Aggregated one, for every timestamp; the last row's totals are the run's.
        with open(full + "_stats_history.csv", newline="") as f:
            history = list(csv.DictReader(f))
        stamps = sorted({int(r["Timestamp"]) for r in history})
        check(len(stamps) >= 3 and stamps[-1] - stamps[0] <= 4, f"timestamps {stamps}")
        by_stamp = {}
        for r in history:
            by_stamp.setdefault(int(r["Timestamp"]), []).append(r["Name"])
        for stamp, names in by_stamp.items():
            check(names[-1] == "Aggregated", f"{stamp}: Aggregated last in {names}")
            check(set(names) <= {"/ok?x=1", "Aggregated"}, f"{stamp}: {names}")
        check(any("/ok?x=1" in names for names in by_stamp.values()), "an endpoint history row")
        last = history[-1]
        check(last["Name"] == "Aggregated" and int(last["Total Request Count"]) == count,
              f"last history row {last}")
        check(any(float(r["Requests/s"]) > 0 for r in history), "a current rate above 0")
        with open(fail + "_stats_history.csv", newline="") as f:
            names = {r["Name"] for r in csv.DictReader(f)}
        check(names == {"Aggregated"}, f"without --csv-full-history only Aggregated: {names}")

        # The failure as Locust's HttpUser records it: requests' raise_for_status() on the 503
        # (reason phrase as the server sent it, the URL as requests has it), then parse_error.
        response = requests.models.Response()
        response.status_code = 503
        response.reason = "Service Unavailable"
        response.url = f"http://127.0.0.1:{port}/fail"
        try:
            response.raise_for_status()
        except requests.exceptions.HTTPError as e:
            expected = StatsError.parse_error(e)
        failures = read(fail + "_failures.csv")
        check(failures[1:] == [["POST", "/fail", expected, "5"]],
              f"failures {failures[1:]} != {expected}")

    checks = "all checks passed" if not FAILED else f"{len(FAILED)} checks failed"
    print(f"locust_csv_test: {checks}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
