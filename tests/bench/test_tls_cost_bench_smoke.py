"""bench/tls_cost.py works: its parsers, floor and report, the HAProxy file it runs, and a smoke run of every part.

No timed assertions: the smoke run only proves that each case completed handshakes through its server without
failures, that a handshake without a request reached no real server, and that HAProxy resumed its sessions with
the real server unless told not to, so the full run measures what it says.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from bench_support import load_bench

bench = load_bench("tls_cost.py")

SPEED_OUTPUT = """\
                  sign    verify    sign/s verify/s
rsa 2048 bits 0.000699s 0.000020s   1429.7  50092.9
                              sign    verify    sign/s verify/s
 256 bits ecdsa (nistp256)   0.0000s   0.0001s  40000.0  13217.6
                              op      op/s
 253 bits ecdh (X25519)   0.0000s  25000.0
"""


def test_openssl_speed_gives_the_sign_rates_and_the_x25519_rate():
    assert bench.parse_openssl_speed(SPEED_OUTPUT) == {"rsa_sign": 1429.7, "ec_sign": 40000.0, "x25519": 25000.0}
    with pytest.raises(RuntimeError, match="x25519"):
        bench.parse_openssl_speed(SPEED_OUTPUT.split("                              op")[0])


def test_the_crypto_floor_is_one_signature_and_two_x25519_multiplications():
    speed = {"ec_sign": 40000.0, "rsa_sign": 1000.0, "x25519": 25000.0}
    assert bench.floor_us(speed, "ec") == pytest.approx(25 + 2 * 40)
    assert bench.floor_us(speed, "rsa") == pytest.approx(1000 + 2 * 40)


def test_s_time_output_is_read_and_a_failed_client_counts_as_none():
    out = "Collecting connection statistics for 1 seconds\n\n153 connections in 0.31s; 493.55 connections/user sec\n153 connections in 2 real seconds, 0 bytes read per connection\n"
    assert bench.parse_s_time(out) == 153
    assert bench.parse_s_time("connect:errno=111\n") is None


PERF_DSO = """\
# Samples: 3K of event 'cpu-clock'
#
# Overhead  Shared Object
# ........  .................
#
    57.79%  libcrypto.so.3
    22.44%  [kernel.kallsyms]
     2.46%  haproxy
"""

PERF_CHILDREN = """\
# Children      Self  Symbol
    95.83%     0.04%  [.] run_poll_loop
    12.32%     0.00%  [.] EVP_PKEY_generate
     6.41%     0.00%  [.] __libc_send (inlined)
     5.71%     0.13%  [.] epoll_wait
     2.98%     0.06%  [.] accept4
     1.00%     0.00%  [.] EVP_PKEY_generate
"""


def test_perf_reports_are_read_per_library_and_per_function():
    assert bench.parse_perf_dso(PERF_DSO) == {"libcrypto.so.3": 57.79, "[kernel.kallsyms]": 22.44, "haproxy": 2.46}
    shares = bench.parse_perf_children(PERF_CHILDREN, ["EVP_PKEY_generate", "accept4", "__libc_send", "SSL_new"])
    assert shares == {"EVP_PKEY_generate": 12.32, "accept4": 2.98, "__libc_send": 6.41}  # the first line of a symbol


def _doc():
    def front(key, case, rnd, us):
        return {"round": rnd, "key": key, "case": case, "us_per_connection": us, "proxy_busy": 0.1, "errors": 0,
                **({} if case == "nginx" else {"backend_connections": 0})}  # fmt: skip

    runs = [front(k, c, r, us) for r in range(2) for k, us in (("ec", 500.0), ("rsa", 1250.0)) for c in bench.FRONT_CASES]
    reenc = [{"round": 0, "backend": b, "us_per_connection": 1000.0, "proxy_busy": 0.1, "errors": 0,
              "backend_connections": 10, "backend_resumed": 0 if b != "tls" else 9} for b in bench.BACKENDS]  # fmt: skip
    doc = {
        "started": "2026-12-07T15:00:00+00:00",
        "machine": {"affinity": 2, "cpu_model": "AMD EPYC", "kernel": "6"},
        "versions": {"haproxy": "HAProxy version 2.6", "nginx": "1.22.1", "openssl": "OpenSSL 3.0.19"},
        "parameters": {"duration_s": 4, "rounds": 2, "clients": 2, "proxy_cpu": 1, "rest_cpu": 0},
        "openssl_speed": {"ec_sign": 40000.0, "rsa_sign": 1000.0, "x25519": 25000.0},
        "in_memory": [{"round": 0, "key": "ec", "us": 400.0}, {"round": 0, "key": "rsa", "us": 1100.0}],
        "front": runs,
        "reencrypt": reenc,
    }
    doc["summary"] = bench.summarize(doc)
    return doc


def test_summary_gives_per_core_and_the_share_of_the_sign_rate():
    s = _doc()["summary"]
    ec, rsa = s["keys"]["ec"], s["keys"]["rsa"]
    assert ec["per_core"]["haproxy"] == 2000 and ec["share_of_sign_rate"]["haproxy"] == pytest.approx(0.05)
    assert rsa["share_of_sign_rate"]["haproxy"] == pytest.approx(0.8)
    assert ec["share_of_sign_rate"]["floor"] == pytest.approx(25 / 105)
    assert s["reencrypt"]["tls"]["backend_resumed"] == 9


def test_section_marks_the_goal_per_row(tmp_path):
    text = bench.section(_doc(), "X-tls-cost.json")
    assert "| HAProxy 2.6, pacslb's TLS settings, front side alone | ECDSA P-256 | 500 | 2,000 | 0.05 **no** | 10% |" in text
    assert "| HAProxy 2.6, pacslb's TLS settings, front side alone | RSA 2048 | 1,250 | 800 | 0.80 ok | 10% |" in text
    assert "| HTTPS, verified, HAProxy's default session reuse | 1,000 | 9 of 10 | 10% |" in text
    assert "bench/results/X-tls-cost.json" in text and "Profile" not in text
    doc = _doc()
    doc["profile"] = {"connections": 100, "us_per_connection": 500.0, "proxy_busy": 0.2, "dso": {"libcrypto.so.3": 60.0},
                      "functions": {"EVP_PKEY_generate": 12.0}}  # fmt: skip
    text = bench.section(doc)
    assert "libcrypto.so.3 60.0 %" in text and "| `EVP_PKEY_generate`: ephemeral key generation (X25519) | 12.0 % | 60 |" in text


@pytest.mark.engine
def test_the_haproxy_file_is_valid_and_carries_pacslbs_tls_settings(tmp_path):
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed")
    certs = bench.make_certificates(tmp_path)
    text = bench.haproxy_config(
        4433, certs["ec"], "127.0.0.1:9 ssl verify none", tmp_path / "s.sock", ("ssl-default-bind-curves X25519:P-256",)
    )
    for line in bench.pacslb_tls_globals():
        assert f"    {line}\n" in text
    assert "no-tls-tickets" in text and "ssl-default-bind-curves X25519:P-256" in text
    (tmp_path / "h.cfg").write_text(text)
    check = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "h.cfg")], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
@pytest.mark.engine
@pytest.mark.e2e
def test_smoke_run_measures_every_part(tmp_path):
    missing = [t for t in ("haproxy", "nginx", "openssl", "taskset") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    readme = tmp_path / "README.md"
    readme.write_text("# bench\n\n<!-- results:tls-cost start -->\nold\n<!-- results:tls-cost end -->\n")
    rc = bench.main(["--smoke", "--results-dir", str(tmp_path / "results"), "--readme", str(readme)])
    (results,) = (tmp_path / "results").glob("*-tls-cost.json")
    doc = json.loads(results.read_text())
    assert rc == 0
    assert {(r["key"], r["case"]) for r in doc["front"]} == {(k, c) for k in bench.KEYS for c in bench.FRONT_CASES}
    for r in doc["front"] + doc["reencrypt"]:
        assert r["connections"] > 0 and r["errors"] == 0 and r["proxy_cpu_s"] > 0, r
    assert all(r["backend_connections"] == 0 for r in doc["front"] if r["case"] != "nginx")
    by_backend = {r["backend"]: r for r in doc["reencrypt"]}
    assert by_backend["tls"]["backend_resumed"] > by_backend["tls"]["backend_connections"] / 2  # sessions reused
    assert by_backend["tls-no-reuse"]["backend_resumed"] == 0 and by_backend["plain"]["backend_connections"] > 0
    assert {m["key"] for m in doc["in_memory"]} == set(bench.KEYS) and all(m["us"] > 0 for m in doc["in_memory"])
    assert doc["openssl_speed"]["ec_sign"] > doc["openssl_speed"]["rsa_sign"] > 0
    text = readme.read_text()
    assert "old" not in text and "crypto floor" in text and "front side alone" in text
