"""greeksd's configuration files, validation and reloads (issue 19 part 6,
adr/0035, docs/operations.md "Configuration").

What is checked, each against what the test itself wrote (line numbers counted
from the text it wrote, values it chose), never against captured output:
- precedence defaults < base file < overlay < GREEKSD_* < flags, through the
  source comment --print-config writes for each value;
- --check-config names FILE:LINE, the key, the value and the rule for an
  unknown key, a wrong type, an out-of-range value, a contradiction, an inline
  secret, and a world-readable key or token file, all in one run (exit 2);
- --print-config never shows a token or a password;
- the deploy/config examples validate;
- on one running greeksd (same PID throughout): named tokens, rotation by
  editing a token file + SIGHUP, a rejected reload that keeps the old
  configuration, a feature flag turned off by SIGHUP, the configuration
  version in /readyz and /metrics, a reload on a file change alone, and the
  "needs a restart" line;
- TLS rotation on one running greeksd: a new certificate by SIGHUP serves new
  handshakes (a client trusting only the new one connects, one trusting only
  the old one fails) while an existing connection keeps working; a key that
  does not belong to the certificate is rejected with the reason and the
  current certificate stays in force.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_grpc import GREEKSD, Server  # noqa: E402  (also puts the stubs on sys.path)

import grpc  # noqa: E402
from greeks.events.v1 import book_events_pb2 as ev  # noqa: E402
from greeks.v1 import book_pb2 as bk  # noqa: E402
from greeks.v1 import book_pb2_grpc as bk_grpc  # noqa: E402
from greeks.v1 import pricing_pb2 as pb  # noqa: E402
from greeks.v1 import pricing_pb2_grpc as pb_grpc  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLOWDOWN = float(os.environ.get("GREEKS_TEST_SLOWDOWN", "1"))
TIMEOUT = 10 * SLOWDOWN


def write(path, text, mode=0o600):
    """Writes atomically (a reader never sees half a file) with `mode`."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path


def line_of(text, needle):
    """1-based line of the first line containing needle."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError("%r not in %r" % (needle, text))


def greeksd(*args, env=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("GREEKSD_")}
    full.update(env or {})
    return subprocess.run([GREEKSD, *args], capture_output=True, text=True, timeout=30, env=full)


def printed(output):
    """{key: (value, source)} from --print-config (sections joined with '.')."""
    result, section = {}, ""
    for line in output.splitlines():
        if line.startswith("#") or not line.strip() or line.startswith("  -"):
            continue
        m = re.match(r'^(\s*)([a-z_0-9]+):\s*(.*?)\s*(?:#\s*(.*))?$', line)
        if not m:
            continue
        indent, key, value, comment = m.groups()
        if not indent and value == "":
            section = key
            continue
        full = key if not indent else section + "." + key
        result[full] = (value.strip('"'), (comment or "").split(";")[0].strip())
    return result


class Files(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.d = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def test_precedence_file_then_overlay_then_environment_then_flag(self):
        base = ("listen: 127.0.0.1:0\nserver_threads: 3\nlimits:\n  max_contracts: 100\n  receive_timeout_ms: 5000\n"
                "log:\n  level: warn\nsubscriber_queue: 100\n")
        overlay = "limits:\n  max_contracts: 200\n  receive_timeout_ms: 6000\nserver_threads: 5\n"
        cfg = write(os.path.join(self.d, "greeksd.yaml"), base)
        dev = write(os.path.join(self.d, "greeksd.dev.yaml"), overlay)
        p = greeksd("--config", cfg, "--environment", "dev", "--print-config", "--max-contracts", "400",
                    env={"GREEKSD_MAX_CONTRACTS": "300", "GREEKSD_SUBSCRIBER_QUEUE": "300"})
        self.assertEqual(p.returncode, 0, p.stderr)
        got = printed(p.stdout)
        self.assertEqual(got["limits.max_contracts"], ("400", "--max-contracts"))           # flag beats all
        self.assertEqual(got["subscriber_queue"], ("300", "GREEKSD_SUBSCRIBER_QUEUE"))      # env beats the file
        self.assertEqual(got["server_threads"], ("5", "%s:%d" % (dev, line_of(overlay, "server_threads"))))
        self.assertEqual(got["limits.receive_timeout_ms"],
                         ("6000", "%s:%d" % (dev, line_of(overlay, "receive_timeout_ms"))))  # overlay beats base
        self.assertEqual(got["log.level"], ("warn", "%s:%d" % (cfg, line_of(base, "level"))))  # base beats default
        self.assertEqual(got["pool_threads"], ("0", "default"))
        # The same through GREEKSD_CONFIG / GREEKSD_ENVIRONMENT, no flags.
        p = greeksd("--print-config", env={"GREEKSD_CONFIG": cfg, "GREEKSD_ENVIRONMENT": "dev"})
        self.assertEqual(printed(p.stdout)["limits.max_contracts"], ("200", "%s:%d" % (dev, 2)))

    def test_file_errors_name_the_variable_that_named_the_file(self):
        """A GREEKSD_CONFIG (a unit file's, a manifest's) that cannot be read
        was reported as '--config', a flag never passed (found in review)."""
        missing = os.path.join(self.d, "none.yaml")
        p = greeksd("--check-config", env={"GREEKSD_CONFIG": missing})
        self.assertEqual(p.returncode, 2)
        self.assertIn("GREEKSD_CONFIG: '%s' cannot be read" % missing, p.stderr)
        self.assertNotIn("--config", p.stderr)
        base = write(os.path.join(self.d, "base.yaml"), "server_threads: 2\n")
        overlay = os.path.join(self.d, "base.prod.yaml")
        p = greeksd("--check-config", env={"GREEKSD_CONFIG": base, "GREEKSD_ENVIRONMENT": "prod"})
        self.assertIn("GREEKSD_ENVIRONMENT overlay: '%s' cannot be read" % overlay, p.stderr)
        p = greeksd("--check-config", "--config", missing, "--environment", "prod", env={"GREEKSD_CONFIG": base})
        self.assertIn("--config: '%s' cannot be read" % missing, p.stderr)  # the flag beats the variable
        p = greeksd("--check-config", "--environment", "prod", env={"GREEKSD_CONFIG": base})
        self.assertIn("--environment overlay: '%s' cannot be read" % overlay, p.stderr)

    def test_one_address_for_both_listeners_is_a_configuration_error(self):
        """--check-config passed listen and metrics_listen on one HOST:PORT;
        the start then failed on 'address in use' (found in review)."""
        cfg = write(os.path.join(self.d, "same.yaml"), "listen: 127.0.0.1:51875\nmetrics_listen: 127.0.0.1:51875\n")
        p = greeksd("--config", cfg, "--check-config")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("%s:2: metrics_listen: '127.0.0.1:51875' is the gRPC listen address too (%s:1: listen "
                      "'127.0.0.1:51875')" % (cfg, cfg), p.stderr)
        p = greeksd("--listen", "0.0.0.0:51875", "--metrics-listen", "127.0.0.1:51875", "--check-config")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--metrics-listen: '127.0.0.1:51875' is the gRPC listen address too", p.stderr)
        p = greeksd("--listen", "[::]:51875", "--metrics-listen", "127.0.0.1:51875", "--check-config")
        self.assertEqual(p.returncode, 2, p.stderr)  # [::] is dual-stack
        # a name and an address it resolves to: both orders (they clashed at the bind)
        # '*' is every interface to the bind; an IPv4-mapped IPv6 address is the IPv4 one
        for listen, metrics in (("127.0.0.1:51875", "localhost:51875"), ("localhost:51875", "127.0.0.1:51875"),
                                ("*:51875", "127.0.0.1:51875"), ("[::ffff:127.0.0.1]:51875", "127.0.0.1:51875")):
            p = greeksd("--listen", listen, "--metrics-listen", metrics, "--check-config")
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("--metrics-listen: '%s' is the gRPC listen address too (--listen '%s')" % (metrics, listen),
                          p.stderr)
        for listen, metrics in (("127.0.0.1:0", "127.0.0.1:0"), ("127.0.0.1:51875", "127.0.0.2:51875"),
                                ("127.0.0.1:51875", "off"), ("[::1]:51875", "0.0.0.0:51875"),
                                ("localhost:51875", "localhost:51876"),
                                # the metrics listener binds [::] for IPv6 alone (found in review)
                                ("127.0.0.1:51875", "[::]:51875"), ("0.0.0.0:51875", "[::]:51875")):
            p = greeksd("--listen", listen, "--metrics-listen", metrics, "--check-config")
            self.assertEqual(p.returncode, 0, (listen, metrics, p.stderr))

    def test_under_tls_the_grpc_wildcard_takes_both_families(self):
        """The gRPC core's TLS listener binds 0.0.0.0 dual-stack: [::1] for
        the metrics passed --check-config and failed the start (found in
        review). In plaintext greeksd's own listener binds 0.0.0.0 for IPv4
        alone, and the pair starts."""
        cert, key = os.path.join(self.d, "w.crt"), os.path.join(self.d, "w.key")
        cert_pem, key_pem = self_signed(self.d, "w")
        tls = ("--tls-cert", cert, "--tls-key", key)
        p = greeksd("--listen", "0.0.0.0:51875", "--metrics-listen", "[::1]:51875", *tls, "--check-config")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--metrics-listen: '[::1]:51875' is the gRPC listen address too", p.stderr)
        p = greeksd("--listen", "0.0.0.0:51875", "--metrics-listen", "[::1]:51875", "--check-config")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = greeksd("--listen", "127.0.0.1:51875", "--metrics-listen", "[::]:51875", *tls, "--check-config")
        self.assertEqual(p.returncode, 0, p.stderr)
        # the metrics listener binds IPv6 alone: an IPv4-mapped address never binds (found in review)
        for mapped in ("[::ffff:127.0.0.1]:51876", "[0:0:0:0:0:ffff:7f00:1]:51876", "[0::FFFF:127.0.0.1]:51876"):
            p = greeksd("--metrics-listen", mapped, "--check-config")
            self.assertEqual(p.returncode, 2, (mapped, p.stderr))
            self.assertIn("is an IPv4-mapped IPv6 address", p.stderr)

    def test_check_config_reports_every_error_with_file_line_key_value_and_rule(self):
        world = write(os.path.join(self.d, "world.tok"), "tok-w\n", 0o644)
        key = write(os.path.join(self.d, "tls.key"), "not a key\n", 0o644)
        cert = write(os.path.join(self.d, "tls.crt"), "not a cert\n")
        text = ("listen: 127.0.0.1:0\n"
                "colour: blue\n"                               # unknown key
                "server_threads: lots\n"                       # wrong type
                "limits:\n"
                "  max_contracts: 0\n"                         # out of range
                "  memory_limit_mb: [1, 2]\n"                  # wrong type (a list)
                "breaker:\n"
                "  window_calls: 10\n"
                "  minimum_calls: 20\n"                        # contradiction
                "tokens:\n"
                "  - {name: desk-a, token: hunter2}\n"         # inline secret
                "  - {name: desk-w, file: %s}\n"               # world-readable
                "tls:\n"
                "  cert: %s\n" % (world, cert))
        cfg = write(os.path.join(self.d, "bad.yaml"), text)
        p = greeksd("--config", cfg, "--check-config")
        self.assertEqual(p.returncode, 2)
        err = p.stderr
        at = lambda needle: "%s:%d: " % (cfg, line_of(text, needle))  # noqa: E731
        self.assertIn(at("colour") + "colour: unknown key", err)
        self.assertIn(at("server_threads") + "server_threads: 'lots' is not an integer", err)
        self.assertIn(at("max_contracts") + "limits.max_contracts: '0' must be in [1, 67108864]", err)
        self.assertIn(at("memory_limit_mb") + "limits.memory_limit_mb: must be a single value, not a list", err)
        self.assertIn(at("minimum_calls") + "breaker.minimum_calls: '20' must not exceed breaker.window_calls 10", err)
        self.assertIn(at("hunter2") + "tokens[0].token: '<redacted>' is an inline secret", err)
        self.assertNotIn("hunter2", err)
        self.assertIn(at("cert:") + "tls.cert: '%s': TLS needs both a certificate and a key" % cert, err)
        self.assertIn("greeksd: 8 configuration errors", err)
        # Once the file parses, the secret files are checked: modes named with their source.
        good = text.replace("colour: blue\n", "").replace("lots", "2").replace("max_contracts: 0", "max_contracts: 9")
        good = good.replace("  memory_limit_mb: [1, 2]\n", "").replace("minimum_calls: 20", "minimum_calls: 5")
        good = good.replace("  - {name: desk-a, token: hunter2}\n", "") + "  key: %s\n" % key
        write(cfg, good)
        p = greeksd("--config", cfg, "--check-config")
        self.assertEqual(p.returncode, 2)
        self.assertIn("%s:%d: tokens[desk-w].file: '%s' has mode 0644" % (cfg, line_of(good, "desk-w"), world),
                      p.stderr)
        self.assertIn("%s:%d: tls.key: '%s' has mode 0644" % (cfg, line_of(good, "key:"), key), p.stderr)
        self.assertIn("%s:%d: tls.cert: '%s' is not a readable PEM certificate" % (cfg, line_of(good, "cert:"), cert),
                      p.stderr)  # both files' errors, not the key's alone
        # a missing certificate says so, as a missing key does (it said "not
        # a readable PEM certificate"; found in review)
        missing = os.path.join(self.d, "absent.crt")
        write(cfg, good.replace(cert, missing))
        p = greeksd("--config", cfg, "--check-config")
        self.assertIn("tls.cert: '%s' cannot be read: No such file or directory" % missing, p.stderr)
        # A PEM block pasted in place of a file name is an inline secret, never echoed.
        write(cfg, "tls:\n  cert: %s\n  key: |\n    -----BEGIN PRIVATE KEY-----\n    MIIEv\n" % cert)
        p = greeksd("--config", cfg, "--check-config")
        self.assertEqual(p.returncode, 2)
        self.assertIn("%s:3: tls.key: '<redacted>' is an inline secret" % cfg, p.stderr)
        self.assertNotIn("MIIEv", p.stderr)
        # A flag's and a variable's errors name the flag and the variable.
        p = greeksd("--config", cfg, "--check-config", "--max-contracts", "0",
                    env={"GREEKSD_LOG_LEVEL": "loud"})
        self.assertIn("--max-contracts: '0' must be in", p.stderr)
        self.assertIn("GREEKSD_LOG_LEVEL: 'loud' must be one of debug, info, warn, error", p.stderr)

    def test_print_config_never_shows_a_secret(self):
        token = write(os.path.join(self.d, "desk-a.tok"), "s3cret-token-value\n")
        cfg = write(os.path.join(self.d, "c.yaml"),
                    "book_store: postgresql://greeks:pa55word@db:5432/books\n"
                    "tokens:\n  - {name: desk-a, file: %s}\n" % token)
        p = greeksd("--config", cfg, "--print-config")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("s3cret-token-value", p.stdout)
        self.assertNotIn("pa55word", p.stdout)
        self.assertIn("postgresql://greeks:REDACTED@db:5432/books", p.stdout)
        self.assertIn('{name: "desk-a", file: "%s"}' % token, p.stdout)

    def test_a_config_that_is_not_a_regular_file_is_refused_not_waited_on(self):
        """A FIFO as the config file blocked the thread that reloads and takes
        SIGTERM at the next SIGHUP: only SIGKILL stopped greeksd (found in
        review). Refused like a FIFO in a token file's place."""
        fifo = os.path.join(self.d, "greeksd.yaml")
        os.mkfifo(fifo)
        p = greeksd("--config", fifo, "--check-config")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--config: '%s' is not a regular file" % fifo, p.stderr)
        p = greeksd("--config", self.d, "--check-config")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("is not a regular file", p.stderr)

    def test_a_port_file_that_cannot_be_written_stops_the_start(self):
        """greeksd served with a reasonless warning, and whoever waited for
        the port file waited forever (found in review)."""
        missing = os.path.join(self.d, "no-such-dir", "port")
        p = greeksd("--listen", "127.0.0.1:0", "--metrics-listen", "off", "--port-file", missing,
                    "--book-store", "sqlite:" + os.path.join(self.d, "books.db"))
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("--port-file: cannot write '%s': No such file or directory: stopping" % missing, p.stderr)

    def test_an_unknown_isa_names_the_variable_and_its_value(self):
        # found in review: "unknown ISA name" alone, and greeksd has no --isa flag to suspect
        p = greeksd("--listen", "127.0.0.1:0", "--check-config", env={"GREEKS_ISA": "avx9"})
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("GREEKS_ISA='avx9' (environment): unknown ISA name", p.stderr)

    def test_the_shipped_examples_validate(self):
        base = os.path.join(ROOT, "deploy", "config", "greeksd.yaml")
        for environment in (None, "dev", "staging"):
            args = ["--config", base, "--check-config"] + (["--environment", environment] if environment else [])
            p = greeksd(*args)
            self.assertEqual(p.returncode, 0, (environment, p.stderr))
        # prod names secret files mounted in production: point them here.
        key, cert = os.path.join(self.d, "k.pem"), os.path.join(self.d, "c.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-keyout", key, "-out", cert, "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        tok = write(os.path.join(self.d, "t"), "x\n")
        p = greeksd("--config", base, "--environment", "prod", "--check-config", "--tls-cert", cert,
                    "--tls-key", key, "--tokens", "desk-a=%s,desk-b=%s" % (tok, tok))
        self.assertEqual(p.returncode, 0, p.stderr)


def http_json(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=TIMEOUT) as r:
        body = r.read().decode()
    return json.loads(body) if path == "/readyz" else body


def market_ticks(book_id):
    """(a queue, a generator of UpdateMarketRequests for an UpdateMarketStream):
    each spot put on the queue is sent as a tick on underlying A; None ends
    the stream."""
    import queue
    ticks = queue.Queue()

    def feed():
        while True:
            spot = ticks.get()
            if spot is None:
                return
            yield bk.UpdateMarketRequest(book_id=book_id, quotes=[bk.MarketQuote(underlying="A", spot=spot, vol=0.2)])
    return ticks, feed


class Reload(unittest.TestCase):
    """One greeksd, reloaded again and again; each step checks it is the same process."""

    BASE = ("log:\n  level: debug\n  format: json\npool_threads: 1\n"
            "tokens:\n  - {name: desk-a, file: %(a)s}\n  - {name: desk-b, file: %(b)s}\n")

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        d = cls.dir.name
        cls.token_a = write(os.path.join(d, "desk-a"), "alpha-1\n")
        cls.token_b = write(os.path.join(d, "desk-b"), "bravo-1\n")
        cls.cfg = write(os.path.join(d, "greeksd.yaml"), cls.BASE % {"a": cls.token_a, "b": cls.token_b})
        cls.metrics_file = os.path.join(d, "metrics-port")
        cls.server = Server("--config", cls.cfg, "--metrics-listen", "127.0.0.1:0",
                            "--metrics-port-file", cls.metrics_file)
        cls.pid = cls.server.proc.pid
        with open(cls.metrics_file) as f:
            cls.metrics_port = int(f.read())
        cls.channel = grpc.insecure_channel(cls.server.target)
        cls.stub = pb_grpc.PricingServiceStub(cls.channel)
        cls.book = bk_grpc.BookServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        code = cls.server.stop()
        cls.server.close()
        cls.dir.cleanup()
        assert code == 0, code

    def setUp(self):
        self.assertIsNone(self.server.proc.poll(), "greeksd exited")
        self.assertEqual(self.server.proc.pid, self.pid)

    def version(self):
        return http_json(self.metrics_port, "/readyz")["config"]["version"]

    def reload(self, text=None, signal_it=True):
        """Writes the config (when given), SIGHUPs (when asked), waits for a new
        version, or for the log to say the reload changed nothing (then the
        version stays: the file came back to what is in force)."""
        before = self.version()
        unchanged = self.server.stderr().count("nothing changed; keeping version")
        if text is not None:
            write(self.cfg, text)
        if signal_it:
            self.server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5 * SLOWDOWN
        while self.version() == before and self.server.stderr().count("nothing changed; keeping version") == unchanged:
            self.assertLess(time.monotonic(), deadline, "no reload: " + self.server.stderr()[-2000:])
            time.sleep(0.05)
        return self.version()

    def price(self, token, style=pb.EUROPEAN):
        request = pb.PriceBatchRequest(model=pb.MODEL_BSM, spot=[100.0], strike=[100.0], expiry=[1.0], rate=[0.05],
                                       vol=[0.2], type=[pb.PUT], style=[style], outputs=[pb.PRICE],
                                       **{"yield": [0.0]})
        metadata = [("authorization", "Bearer " + token)] if token else []
        return self.stub.PriceBatch(request, metadata=metadata, timeout=TIMEOUT)

    def log_with(self, *needles):
        """The server's log once every needle is in it. The access line is
        written when the call is freed, just after the client has its answer,
        so a line can trail the reply by a moment (more under sanitizers)."""
        deadline = time.monotonic() + 5 * SLOWDOWN
        log = self.server.stderr()
        while not all(n in log for n in needles) and time.monotonic() < deadline:
            time.sleep(0.02)
            log = self.server.stderr()
        for n in needles:
            self.assertIn(n, log)
        return log

    def code_of(self, call):
        with self.assertRaises(grpc.RpcError) as raised:
            call()
        return raised.exception.code(), raised.exception.details()

    def config_text(self, extra=""):
        return self.BASE % {"a": self.token_a, "b": self.token_b} + extra

    def test_1_each_named_token_works_and_its_name_is_logged_never_its_value(self):
        self.assertEqual(self.price("alpha-1").count, 1)
        self.assertEqual(self.price("bravo-1").count, 1)
        self.assertEqual(self.code_of(lambda: self.price("nobody"))[0], grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.code_of(lambda: self.price(None))[0], grpc.StatusCode.UNAUTHENTICATED)
        log = self.log_with("(token desk-a)", "(token desk-b)", "PriceBatch UNAUTHENTICATED")
        for secret in ("alpha-1", "bravo-1", "nobody"):
            self.assertNotIn(secret, log)
        start = [json.loads(l) for l in log.splitlines() if '"configuration version 1 ' in l]
        self.assertEqual(len(start), 1, log[-2000:])

    def test_2_rotating_a_token_file_with_sighup_takes_effect_without_a_restart(self):
        before = self.version()
        write(self.token_a, "alpha-1\nalpha-2\n")  # overlap: both accepted while clients move
        self.assertGreater(self.reload(), before)
        self.assertEqual(self.price("alpha-1").count, 1)
        self.assertEqual(self.price("alpha-2").count, 1)
        write(self.token_a, "alpha-2\n")
        self.reload()
        self.assertEqual(self.code_of(lambda: self.price("alpha-1"))[0], grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.price("alpha-2").count, 1)
        self.assertEqual(self.price("bravo-1").count, 1)
        # A token file named by a reload (a new desk) is in force at once.
        token_c = write(os.path.join(self.dir.name, "desk-c"), "charlie-1\n")
        self.assertEqual(self.code_of(lambda: self.price("charlie-1"))[0], grpc.StatusCode.UNAUTHENTICATED)
        self.reload(self.config_text("  - {name: desk-c, file: %s}\n" % token_c))
        self.assertEqual(self.price("charlie-1").count, 1)
        self.log_with("(token desk-c)")
        self.reload(self.config_text())
        self.assertEqual(self.code_of(lambda: self.price("charlie-1"))[0], grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.server.stderr().count("serving on"), 1)  # never restarted

    def rejected_after_sighup(self, rejected_before):
        """SIGHUP, then the rejected reload's record (JSON) once a new one is logged."""
        self.server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5 * SLOWDOWN
        while self.server.stderr().count("rejected") == rejected_before:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        return [json.loads(l) for l in self.server.stderr().splitlines() if "rejected" in l][-1]

    def test_3_an_invalid_reload_is_rejected_and_the_old_configuration_keeps_running(self):
        before = self.version()
        rejected_before = self.server.stderr().count("rejected")
        write(self.cfg, self.config_text("limits:\n  max_contracts: -5\nbogus_key: 1\n"))
        line = self.rejected_after_sighup(rejected_before)
        self.assertEqual(line["level"], "error")
        self.assertIn("keeping version %d" % before, line["message"])
        self.assertIn("limits.max_contracts: '-5' must be in [1, 67108864]", line["error"])
        self.assertIn("bogus_key: unknown key", line["error"])
        self.assertEqual(self.version(), before)
        self.assertEqual(self.price("alpha-2").count, 1)  # calls still work, old tokens still in force
        metrics = http_json(self.metrics_port, "/metrics")
        self.assertRegex(metrics, r'greeks_config_reloads_total\{result="rejected"\} [1-9]')
        # Errors whose escaping grows them (control bytes: six bytes each in
        # JSON) are left out whole and counted, however long the list: they
        # fit the 8 KiB text but passed the 16 KiB log line once escaped, and
        # the record ended mid-key with its count lost (found in review).
        rejected_before = self.server.stderr().count("rejected")
        keys = "".join('"k%02d%s": 1\n' % (i, "\\x01" * 100) for i in range(60))
        write(self.cfg, self.config_text(keys))
        line = self.rejected_after_sighup(rejected_before)
        self.assertIn("rejected: 60 errors", line["message"])
        shown = line["error"].count(": unknown key")
        self.assertRegex(line["error"], r"\(%d more errors than fit here\)$" % (60 - shown))
        self.assertGreater(shown, 0)
        # the list's head in file order, as --check-config keeps it: a short
        # error after a long one that did not fit was kept, and a key holding
        # a newline was cut in two (found in review). An error reads
        # "PATH:LINE: KEY: rule", and the temporary PATH can hold "k36" too.
        self.assertEqual(re.findall(r"\d: k(\d\d)", line["error"]), ["%02d" % i for i in range(shown)])
        rejected_before = self.server.stderr().count("rejected")
        keys = '"k00ab\\n%s": 1\n' % ("\\x01" * 10)
        keys += "".join('"k%02d%s": 1\n' % (i, "\\x01" * 250) for i in range(1, 15)) + '"k15short": 1\n'
        write(self.cfg, self.config_text(keys))
        line = self.rejected_after_sighup(rejected_before)
        shown = line["error"].count(": unknown key")
        self.assertLess(shown, 16)  # some left out: the short last one too
        self.assertEqual(len(line["error"].split("; ")), shown + 1, line["error"][-400:])
        self.assertEqual(re.findall(r"\d: k(\d\d)", line["error"]), ["%02d" % i for i in range(shown)])
        write(self.cfg, self.config_text())
        self.reload()

    def test_4_a_feature_turned_off_by_sighup_refuses_american_contracts_and_hedges(self):
        self.assertEqual(self.price("alpha-2", pb.AMERICAN).count, 1)
        version = self.reload(self.config_text("features:\n  american_over_grpc: false\n  strategy_agent: false\n"))
        code, details = self.code_of(lambda: self.price("alpha-2", pb.AMERICAN))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("features.american_over_grpc", details)
        self.assertEqual(self.price("alpha-2").count, 1)  # European calls still priced
        code, details = self.code_of(lambda: self.book.GenerateHedge(
            bk.GenerateHedgeRequest(book_id="x", underlying="AAPL"),
            metadata=[("authorization", "Bearer alpha-2")], timeout=TIMEOUT))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("features.strategy_agent", details)
        ready = http_json(self.metrics_port, "/readyz")
        self.assertEqual(ready["config"]["version"], version)
        self.assertEqual(ready["features"], {"dynamic_batching": True, "avx512": True, "american_over_grpc": False,
                                             "strategy_agent": False})
        metrics = http_json(self.metrics_port, "/metrics")
        self.assertIn('greeks_feature_enabled{feature="american_over_grpc"} 0', metrics)
        self.assertIn('greeks_feature_enabled{feature="dynamic_batching"} 1', metrics)
        info = re.search(r'greeks_config_info\{[^}]*version="(\d+)",hash="([0-9a-f]{16})"\} 1', metrics)
        self.assertIsNotNone(info, metrics[:3000])
        self.assertEqual((int(info.group(1)), info.group(2)), (version, ready["config"]["hash"]))

    def test_5_a_changed_file_reloads_without_a_signal(self):
        before = http_json(self.metrics_port, "/readyz")["config"]
        by_file = self.server.stderr().count("configuration reloaded (file change)")
        version = self.reload(self.config_text(), signal_it=False)
        after = http_json(self.metrics_port, "/readyz")["config"]
        self.assertEqual(after["version"], version)
        self.assertNotEqual(after["hash"], before["hash"])  # the features came back on
        self.assertEqual(self.price("alpha-2", pb.AMERICAN).count, 1)
        self.assertEqual(self.server.stderr().count("configuration reloaded (file change)"), by_file + 1)

    def test_7_an_emptied_file_is_refused_and_auth_stays_on(self):
        """`: > greeksd.yaml` (or an editor caught mid-write) once reloaded an
        empty configuration and switched bearer-token auth off."""
        before = self.version()
        rejected_before = self.server.stderr().count("reload (file change) rejected")
        write(self.cfg, "")
        deadline = time.monotonic() + 5 * SLOWDOWN
        while self.server.stderr().count("reload (file change) rejected") == rejected_before:
            self.assertLess(time.monotonic(), deadline, self.server.stderr()[-2000:])
            time.sleep(0.05)
        self.assertIn("holds no settings", self.server.stderr())
        self.assertEqual(self.version(), before)
        self.assertEqual(self.code_of(lambda: self.price(None))[0], grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.price("bravo-1").count, 1)
        self.reload(self.config_text(), signal_it=False)  # the file back: reloaded again

    def test_8_chmod_on_a_refused_token_file_reloads_without_a_signal(self):
        """A token file whose mode a reload refused is fixed with `chmod 600`,
        as the refusal says; the watch saw only size and mtime, so the fix
        went unseen until a SIGHUP (found in review)."""
        rejected_before = self.server.stderr().count("reload (file change) rejected")
        before = self.version()
        write(self.token_b, "bravo-1\nbravo-2\n", 0o644)
        deadline = time.monotonic() + 5 * SLOWDOWN
        while self.server.stderr().count("reload (file change) rejected") == rejected_before:
            self.assertLess(time.monotonic(), deadline, self.server.stderr()[-2000:])
            time.sleep(0.05)
        self.assertIn("has mode 0644", self.server.stderr())
        self.assertEqual(self.code_of(lambda: self.price("bravo-2"))[0], grpc.StatusCode.UNAUTHENTICATED)
        os.chmod(self.token_b, 0o600)
        self.assertGreater(self.reload(signal_it=False), before)
        self.assertEqual(self.price("bravo-2").count, 1)
        write(self.token_b, "bravo-1\n")
        self.reload(signal_it=False)

    def test_92_a_revoked_token_ends_the_streams_it_opened(self):
        """A stream keeps the configuration it started with, but not a token a
        reload revoked: an UpdateMarketStream opened with it went on writing
        marks, and a SubscribeEvents went on feeding events (found in review).
        After the reload the stream's next tick is refused and the
        subscription ends at once (idle, it does not wait for an event), both
        UNAUTHENTICATED."""
        token_d = write(os.path.join(self.dir.name, "desk-d"), "delta-1\n")
        self.reload(self.config_text("  - {name: desk-d, file: %s}\n" % token_d))
        revoked, good = [("authorization", "Bearer delta-1")], [("authorization", "Bearer bravo-1")]
        self.book.OpenBook(bk.OpenBookRequest(book_id="revoke", name="r", currency="USD"), metadata=good,
                           timeout=TIMEOUT)
        ticks, feed = market_ticks("revoke")
        stream = self.book.UpdateMarketStream.future(feed(), metadata=revoked, timeout=60 * SLOWDOWN)
        ticks.put(100.0)
        events = self.book.SubscribeEvents(bk.SubscribeEventsRequest(book_id="revoke"), metadata=revoked,
                                           timeout=60 * SLOWDOWN)
        seen = [next(events).type, next(events).type]  # BookOpened, then the first tick's MarketUpdated
        self.assertEqual(seen[0], ev.BOOK_OPENED)
        self.reload(self.config_text())  # desk-d removed
        ticks.put(101.0)
        ticks.put(102.0)
        ticks.put(None)
        with self.assertRaises(grpc.RpcError) as raised:
            stream.result()
        self.assertEqual(raised.exception.code(), grpc.StatusCode.UNAUTHENTICATED, raised.exception.details())
        self.assertIn("revoked by a reload: message 2 and later were not recorded", raised.exception.details())
        # the idle subscription ended at the reload, without waiting for an event
        with self.assertRaises(grpc.RpcError) as raised:
            for e in events:
                seen.append(e.type)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.UNAUTHENTICATED, raised.exception.details())
        self.assertIn("revoked by a reload; resume from sequence 3", raised.exception.details())
        self.assertEqual(len(seen), 2)
        self.book.UpdateMarket(bk.UpdateMarketRequest(book_id="revoke", quotes=[
            bk.MarketQuote(underlying="A", spot=103.0, vol=0.2)]), metadata=good, timeout=TIMEOUT)
        trail = list(self.book.GetAuditTrail(bk.GetAuditTrailRequest(book_id="revoke"), metadata=good,
                                             timeout=TIMEOUT))
        spots = [ev.MarketUpdated.FromString(e.payload).spot for e in trail if e.type == ev.MARKET_UPDATED]
        self.assertEqual(spots, [100.0, 103.0])  # nothing the revoked stream sent after the reload

    def test_93_turning_tokens_on_ends_the_anonymous_streams(self):
        """Streams opened while tokens were off went on writing marks and
        reading events after a reload turned tokens on (found in review): the
        market stream's next tick and the subscription now end UNAUTHENTICATED,
        saying why, as a revoked token's do."""
        no_tokens = "log:\n  level: debug\n  format: json\npool_threads: 1\n"
        self.reload(no_tokens)
        try:
            self.book.OpenBook(bk.OpenBookRequest(book_id="anonymous", name="a", currency="USD"), timeout=TIMEOUT)
            ticks, feed = market_ticks("anonymous")
            stream = self.book.UpdateMarketStream.future(feed(), timeout=60 * SLOWDOWN)
            ticks.put(100.0)
            events = self.book.SubscribeEvents(bk.SubscribeEventsRequest(book_id="anonymous"),
                                               timeout=60 * SLOWDOWN)
            self.assertEqual([next(events).type, next(events).type], [ev.BOOK_OPENED, ev.MARKET_UPDATED])
        finally:
            self.reload(self.config_text())  # tokens on again, for this and the later tests
        ticks.put(101.0)
        ticks.put(None)
        with self.assertRaises(grpc.RpcError) as raised:
            stream.result()
        self.assertEqual(raised.exception.code(), grpc.StatusCode.UNAUTHENTICATED, raised.exception.details())
        self.assertIn("a reload turned bearer tokens on and this stream started without one: message 2 and later "
                      "were not recorded", raised.exception.details())
        with self.assertRaises(grpc.RpcError) as raised:
            for _ in events:
                pass
        self.assertEqual(raised.exception.code(), grpc.StatusCode.UNAUTHENTICATED, raised.exception.details())
        self.assertIn("a reload turned bearer tokens on", raised.exception.details())
        trail = list(self.book.GetAuditTrail(bk.GetAuditTrailRequest(book_id="anonymous"),
                                             metadata=[("authorization", "Bearer bravo-1")], timeout=TIMEOUT))
        spots = [ev.MarketUpdated.FromString(e.payload).spot for e in trail if e.type == ev.MARKET_UPDATED]
        self.assertEqual(spots, [100.0])

    def test_91_a_reload_that_raises_the_log_level_logs_itself(self):
        """The reload's INFO line was written under the old level: from warn
        back to info or debug, no line said the reload happened (found in
        review)."""
        self.reload(self.config_text().replace("level: debug", "level: warn"))
        before = self.server.stderr().count('configuration reloaded')
        version = self.reload(self.config_text())
        log = self.log_with("version %d" % version)
        self.assertEqual(log.count('configuration reloaded'), before + 1, log[-2000:])
        line = [json.loads(x) for x in log.splitlines() if "version %d (hash" % version in x][-1]
        self.assertEqual(line["level"], "info")

    def test_9_a_reload_keeps_the_receive_timeout_of_a_call_in_flight(self):
        """A stream opened under a 20 s receive timeout was cut after 1 s by a
        reload to 1000 ms (the check read the live configuration, not the
        call's: found in review). Calls in flight keep their rules."""
        import threading
        self.reload(self.config_text("limits:\n  receive_timeout_ms: 20000\n"))
        go_on = threading.Event()
        first = pb.RevaluePortfolioRequest(
            markets=pb.Markets(spot=[100.0], rate=[0.01]),
            positions=pb.Positions(underlying=[0], type=[pb.CALL], strike=[100.0], expiry=[1.0], vol=[0.2],
                                   quantity=[1.0], multiplier=[1.0]))

        def chunks():
            yield first
            go_on.wait(10)

        answer = {}
        with open(self.token_a) as f:
            token = f.read().strip()  # the earlier tests rotate it

        def call():
            try:
                answer["reply"] = self.stub.RevaluePortfolioStream(
                    chunks(), metadata=[("authorization", "Bearer " + token)], timeout=30 * SLOWDOWN)
            except grpc.RpcError as e:
                answer["error"] = (e.code(), e.details())

        caller = threading.Thread(target=call)
        caller.start()
        try:
            time.sleep(0.5)
            self.reload(self.config_text("limits:\n  receive_timeout_ms: 1000\n"))
            time.sleep(2.5)  # past the new limit, well within the call's own
        finally:
            go_on.set()
            caller.join(30)
        self.assertNotIn("error", answer)
        self.assertEqual(answer["reply"].positions, 1)
        self.reload(self.config_text())

    def test_6_a_setting_that_needs_a_restart_is_kept_and_said_so(self):
        # Nothing else changed: the version stays (a reload that changes
        # nothing publishes nothing; each kept ~49 KB for good: found in review).
        before = self.version()
        unchanged = self.server.stderr().count("nothing changed; keeping version %d" % before)
        write(self.cfg, self.config_text().replace("pool_threads: 1", "pool_threads: 2"))
        self.server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5 * SLOWDOWN
        while self.server.stderr().count("nothing changed; keeping version %d" % before) == unchanged:
            self.assertLess(time.monotonic(), deadline, self.server.stderr()[-2000:])
            time.sleep(0.05)
        self.assertIn("pool_threads changed: needs a restart; keeping 1", self.server.stderr())
        self.assertEqual(http_json(self.metrics_port, "/readyz")["pool"]["threads"], 1)
        self.assertEqual(self.version(), before)
        rss = [int(l.split()[1]) for l in open("/proc/%d/status" % self.pid) if l.startswith("VmRSS")][0]
        for _ in range(100):  # a sidecar's SIGHUPs: the configuration in force is kept, not copied
            self.server.proc.send_signal(signal.SIGHUP)
            time.sleep(0.005)
        deadline = time.monotonic() + 10 * SLOWDOWN
        while self.server.stderr().count("nothing changed; keeping version %d" % before) < unchanged + 2:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        time.sleep(0.5 * SLOWDOWN)
        self.assertEqual(self.version(), before)
        grown = [int(l.split()[1]) for l in open("/proc/%d/status" % self.pid) if l.startswith("VmRSS")][0] - rss
        if not ("ASAN_OPTIONS" in os.environ or "TSAN_OPTIONS" in os.environ):  # their allocators keep what is freed
            self.assertLess(grown, 2048, "kB after 100 SIGHUPs")
        # A comment above the settings moves each one's FILE:LINE, not its
        # value: nothing changed (it published a new version; found in review).
        unchanged = self.server.stderr().count("nothing changed; keeping version %d" % before)
        write(self.cfg, "# moved down a line\n" + self.config_text().replace("pool_threads: 1", "pool_threads: 2"))
        self.server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5 * SLOWDOWN
        while self.server.stderr().count("nothing changed; keeping version %d" % before) == unchanged:
            self.assertLess(time.monotonic(), deadline, self.server.stderr()[-2000:])
            time.sleep(0.05)
        self.assertEqual(self.version(), before)


def self_signed(directory, name):
    """A fresh self-signed certificate for 127.0.0.1 (its own RSA key): (cert PEM, key PEM)."""
    key, cert = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    with open(cert) as c, open(key) as k:
        return c.read(), k.read()


class TlsRotation(unittest.TestCase):
    """Certificate A at start, B after a SIGHUP, then a mismatched pair refused; one greeksd throughout."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        d = cls.dir.name
        cls.a = self_signed(d, "a")
        cls.b = self_signed(d, "b")
        assert cls.a[0] != cls.b[0] and cls.a[1] != cls.b[1]
        cls.cert = write(os.path.join(d, "server.crt"), cls.a[0], 0o644)
        cls.key = write(os.path.join(d, "server.key"), cls.a[1])
        cls.server = Server("--tls-cert", cls.cert, "--tls-key", cls.key, "--log-format", "json")
        cls.pid = cls.server.proc.pid

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        cls.server.close()
        cls.dir.cleanup()
        assert code == 0, code

    def channel_trusting(self, cert_pem):
        # Its own subchannel pool: a new channel must make a new connection (a
        # new handshake), never borrow one an earlier channel opened.
        creds = grpc.ssl_channel_credentials(root_certificates=cert_pem.encode())
        return grpc.secure_channel(self.server.target, creds, options=[("grpc.use_local_subchannel_pool", 1)])

    def price(self, channel, timeout=TIMEOUT):
        request = pb.PriceBatchRequest(model=pb.MODEL_BSM, spot=[100.0], strike=[100.0], expiry=[1.0], rate=[0.05],
                                       vol=[0.2], type=[pb.PUT], style=[pb.EUROPEAN], outputs=[pb.PRICE],
                                       **{"yield": [0.0]})
        return pb_grpc.PricingServiceStub(channel).PriceBatch(request, timeout=timeout)

    def handshake_fails(self, cert_pem):
        channel = self.channel_trusting(cert_pem)
        try:
            with self.assertRaises(grpc.RpcError) as raised:
                self.price(channel, timeout=3 * SLOWDOWN)
            return raised.exception.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            channel.close()

    def serves(self, cert_pem):
        channel = self.channel_trusting(cert_pem)
        try:
            return self.price(channel).count == 1
        finally:
            channel.close()

    def sighup_until(self, condition, what):
        self.server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10 * SLOWDOWN
        while not condition():
            self.assertLess(time.monotonic(), deadline, what + ": " + self.server.stderr()[-3000:])
            time.sleep(0.1)

    def assert_pair_refused(self, pair, reason):
        """Swaps in `pair` (certificate PEM, key PEM) and SIGHUPs: the reload is
        rejected naming `reason`, and certificate B is still served."""
        rejected = self.server.stderr().count("rejected")
        write(self.key, pair[1])
        write(self.cert, pair[0], 0o644)
        self.sighup_until(lambda: self.server.stderr().count("rejected") > rejected,
                          "the pair was not rejected (%s)" % reason)
        line = [json.loads(l) for l in self.server.stderr().splitlines() if "rejected" in l][-1]
        self.assertIn(reason, line["error"])
        self.assertTrue(self.serves(self.b[0]))

    def test_rotation_by_sighup_then_a_mismatched_pair_is_refused(self):
        # Certificate A: a client trusting A is served; one trusting only B is not.
        old = self.channel_trusting(self.a[0])
        self.assertEqual(self.price(old).count, 1)
        self.assertTrue(self.handshake_fails(self.b[0]))

        # Rotate to B (key first, then the certificate, as an operator would) + SIGHUP.
        write(self.key, self.b[1])
        write(self.cert, self.b[0], 0o644)
        accepted = lambda: "the TLS certificate and key (new handshakes get them)" in self.server.stderr()  # noqa: E731
        self.sighup_until(accepted, "no reload took certificate B")
        self.assertTrue(self.serves(self.b[0]))          # a new handshake gets B
        self.assertTrue(self.handshake_fails(self.a[0]))  # and no longer A
        self.assertEqual(self.price(old).count, 1)       # the connection made under A keeps working
        self.assertIn("new handshakes now get the certificate of configuration version", self.server.stderr())

        # A mismatched pair (B's key, A's certificate): refused with the reason; B stays in force.
        rejected = self.server.stderr().count("rejected")
        write(self.key, self.b[1])
        write(self.cert, self.a[0], 0o644)
        self.sighup_until(lambda: self.server.stderr().count("rejected") > rejected, "the bad pair was not rejected")
        line = [json.loads(l) for l in self.server.stderr().splitlines() if "rejected" in l][-1]
        self.assertEqual(line["level"], "error")
        self.assertIn("--tls-key: '%s' does not belong to the certificate in --tls-cert '%s'" % (self.key, self.cert),
                      line["error"])
        self.assertTrue(self.serves(self.b[0]))
        self.assertTrue(self.handshake_fails(self.a[0]))

        # An expired pair: refused with its date (it was swapped in without a
        # word, and verifying clients then failed: found in review); B stays.
        with tempfile.TemporaryDirectory() as scratch:
            self.assert_pair_refused(expired_pair(scratch), "expired on Jan  2 00:00:00 2020 GMT")

        # A pair that parses and matches but that TLS refuses (a leaf signed
        # with SHA-1 by a CA: OpenSSL's security level says "ca md too weak"):
        # checked, it passed, the reload said it was in force and gRPC kept B
        # (found in review). Refused now; B stays.
        with tempfile.TemporaryDirectory() as scratch:
            self.assert_pair_refused(sha1_signed_pair(scratch), "the certificate is refused by TLS: ca md too weak")
        old.close()
        self.assertIsNone(self.server.proc.poll())
        self.assertEqual(self.server.proc.pid, self.pid)
        self.assertEqual(self.server.stderr().count("serving on"), 1)  # never restarted


def expired_pair(directory):
    """A self-signed certificate valid on 2020-01-01 only, and its key (PEM
    text each), made by `openssl ca`, which takes the dates."""
    run = lambda *a: subprocess.run(a, cwd=directory, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "old.key", "-out", "old.csr", "-subj", "/CN=localhost")
    write(os.path.join(directory, "index.txt"), "")
    write(os.path.join(directory, "serial"), "01\n")
    write(os.path.join(directory, "ca.cnf"), "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\n"
          "serial=serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n")
    run("openssl", "ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "old.key", "-in", "old.csr",
        "-out", "old.pem", "-notext", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
    with open(os.path.join(directory, "old.pem")) as c, open(os.path.join(directory, "old.key")) as k:
        return c.read(), k.read()


class TlsModeKept(unittest.TestCase):
    def test_a_file_that_drops_tls_keeps_the_running_pair_watched_and_checked(self):
        """A reload of a file without its tls: block keeps TLS (a restart
        switches modes), but watched and checked the new file's empty paths:
        a rotation of the running pair was missed and a 0644 key was taken on
        a SIGHUP (found in review). The kept pair is the one watched and
        checked."""
        with tempfile.TemporaryDirectory() as d:
            a, b = self_signed(d, "a"), self_signed(d, "b")
            cert = write(os.path.join(d, "server.crt"), a[0], 0o644)
            key = write(os.path.join(d, "server.key"), a[1])
            cfg = write(os.path.join(d, "greeksd.yaml"), "log:\n  format: json\ntls:\n  cert: %s\n  key: %s\n"
                        % (cert, key))
            server = Server("--config", cfg)
            try:
                def log_count(text):
                    return server.stderr().count(text)

                def wait(what, condition):
                    deadline = time.monotonic() + 10 * SLOWDOWN
                    while not condition():
                        self.assertLess(time.monotonic(), deadline, what + ": " + server.stderr()[-3000:])
                        time.sleep(0.1)

                warned = log_count("switching between plaintext and TLS needs a restart")
                write(cfg, "log:\n  format: json\n")
                server.proc.send_signal(signal.SIGHUP)
                wait("the mode switch was not refused", lambda: log_count(
                    "switching between plaintext and TLS needs a restart") > warned)
                rejected = log_count("rejected")
                write(key, b[1], 0o644)
                write(cert, b[0], 0o644)
                server.proc.send_signal(signal.SIGHUP)
                wait("a 0644 key of the kept pair was not refused", lambda: log_count("rejected") > rejected)
                self.assertIn("has mode 0644", server.stderr().splitlines()[-1] + server.stderr()[-2000:])
                os.chmod(key, 0o600)  # the watch sees it: no signal
                wait("the kept pair's fix was not picked up by the watch",
                     lambda: "the TLS certificate and key (new handshakes get them)" in server.stderr())
                creds = grpc.ssl_channel_credentials(root_certificates=b[0].encode())
                channel = grpc.secure_channel(server.target, creds, options=[("grpc.use_local_subchannel_pool", 1)])
                request = pb.PriceBatchRequest(model=pb.MODEL_BSM, spot=[100.0], strike=[100.0], expiry=[1.0],
                                               rate=[0.05], vol=[0.2], type=[pb.PUT], style=[pb.EUROPEAN],
                                               outputs=[pb.PRICE], **{"yield": [0.0]})
                self.assertEqual(pb_grpc.PricingServiceStub(channel).PriceBatch(request, timeout=TIMEOUT).count, 1)
                channel.close()
            finally:
                server.stop()
                server.close()


class TlsModeAsked(unittest.TestCase):
    def test_a_reload_asking_for_tls_checks_the_pair_it_asks_for(self):
        """A plaintext server's file gains a tls: block: the mode stays until a
        restart, but the pair asked for is checked now. Kept unchecked, a
        missing pair was accepted and the next start failed (found in
        review)."""
        with tempfile.TemporaryDirectory() as d:
            cfg = write(os.path.join(d, "greeksd.yaml"), "log:\n  format: json\n")
            server = Server("--config", cfg)
            try:
                rejected = server.stderr().count("rejected")
                missing = os.path.join(d, "missing")
                write(cfg, "log:\n  format: json\ntls:\n  cert: %s.crt\n  key: %s.key\n" % (missing, missing))
                server.proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 10 * SLOWDOWN
                while server.stderr().count("rejected") == rejected:
                    self.assertLess(time.monotonic(), deadline, server.stderr()[-3000:])
                    time.sleep(0.1)
                line = [json.loads(l) for l in server.stderr().splitlines() if "rejected" in l][-1]
                self.assertIn("'%s.crt' cannot be read" % missing, line["error"])
            finally:
                server.stop()
                server.close()


def sha1_signed_pair(directory):
    """A leaf for localhost signed with SHA-1 by a fresh CA, and its key (PEM
    text each): it parses and matches its key, and TLS refuses it."""
    run = lambda *a: subprocess.run(a, cwd=directory, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", "ca.key",
        "-out", "ca.pem", "-subj", "/CN=weak test CA")
    run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
        "-subj", "/CN=localhost")
    write(os.path.join(directory, "ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-sha1", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.crt", "-days", "2", "-extfile", "ext")
    with open(os.path.join(directory, "leaf.crt")) as c, open(os.path.join(directory, "leaf.key")) as k:
        return c.read(), k.read()


class TlsChecks(unittest.TestCase):
    def test_an_encrypted_key_is_refused_without_asking_a_terminal(self):
        """With a terminal, OpenSSL asked for the key's passphrase: the start
        hung, and a reload blocked the main thread and its signals (found in
        review). Under a pseudo-terminal, --check-config refuses the key and
        exits 2 at once."""
        import pty
        import select
        with tempfile.TemporaryDirectory() as d:
            cert, key = self_signed(d, "t")
            plain = write(os.path.join(d, "plain.key"), key)
            encrypted = os.path.join(d, "enc.key")
            subprocess.run(["openssl", "pkey", "-in", plain, "-out", encrypted, "-aes256", "-passout", "pass:secret"],
                           check=True, capture_output=True)
            os.chmod(encrypted, 0o600)
            certificate = write(os.path.join(d, "t.crt"), cert, 0o644)
            pid, fd = pty.fork()
            if pid == 0:
                os.execv(GREEKSD, [GREEKSD, "--tls-cert", certificate, "--tls-key", encrypted, "--book-store",
                                   "sqlite:" + os.path.join(d, "b.db"), "--check-config"])
            output, deadline = b"", time.monotonic() + 20 * SLOWDOWN
            status = None
            while status is None and time.monotonic() < deadline:
                try:
                    if select.select([fd], [], [], 0.05)[0]:  # never block: a prompt waits for input
                        output += os.read(fd, 4096)
                except OSError:
                    pass
                done, code = os.waitpid(pid, os.WNOHANG)
                status = code if done else None
                time.sleep(0.02)
            if status is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            os.close(fd)
            self.assertIsNotNone(status, "greeksd waited on the terminal: %r" % output[-500:])
            self.assertEqual(os.waitstatus_to_exitcode(status), 2, output[-500:])
            self.assertNotIn(b"pass phrase", output)
            self.assertIn(b"an encrypted key is not supported", output)


class BreakerReload(unittest.TestCase):
    """The pricing breaker's thresholds change on a live server (gk_breaker_reconfigure):
    every kernel call fails (GREEKSD_TEST_FAULT=fail); with minimum_calls 1000
    the breaker stays closed after 30 failed calls, and once a reload lowers it
    to 10 the next failure opens it (health NOT_SERVING), same process."""

    def test_lowering_minimum_calls_by_sighup_opens_the_breaker(self):
        d = tempfile.TemporaryDirectory()
        cfg = write(os.path.join(d.name, "greeksd.yaml"),
                    "breaker:\n  window_calls: 1000\n  minimum_calls: 1000\n")
        server = Server("--config", cfg, env={"GREEKSD_TEST_FAULT": "fail"})
        try:
            channel = grpc.insecure_channel(server.target)
            stub = pb_grpc.PricingServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            request = pb.PriceChainRequest(model=pb.MODEL_BSM, market=pb.Market(spot=100.0, rate=0.01),
                                           contracts=pb.ChainContracts(strike=[100.0], expiry=[1.0], vol=[0.2],
                                                                       type=[pb.CALL]))

            def fail_once():
                with self.assertRaises(grpc.RpcError):
                    stub.PriceChain(request, timeout=TIMEOUT)

            def status():
                return health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT).status

            for _ in range(30):
                fail_once()
            self.assertEqual(status(), health_pb2.HealthCheckResponse.SERVING)
            write(cfg, "breaker:\n  window_calls: 1000\n  minimum_calls: 10\n")
            server.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5 * SLOWDOWN
            while "changed: breaker.minimum_calls" not in server.stderr():
                self.assertLess(time.monotonic(), deadline, server.stderr()[-2000:])
                time.sleep(0.05)
            try:
                stub.PriceChain(request, timeout=TIMEOUT)
            except grpc.RpcError:
                pass
            deadline = time.monotonic() + 5 * SLOWDOWN
            while status() != health_pb2.HealthCheckResponse.NOT_SERVING:
                self.assertLess(time.monotonic(), deadline, "the breaker did not open after the reload")
                time.sleep(0.05)
            channel.close()
        finally:
            self.assertEqual(server.stop(), 0)
            server.close()
            d.cleanup()

    def test_a_minimum_above_the_running_window_is_refused_not_half_applied(self):
        """window_calls needs a restart, so a reload keeps the running 100; a
        new minimum_calls of 500 beside it is a pair a start refuses. It was
        published (config version 2) while the breaker kept its old thresholds."""
        d = tempfile.TemporaryDirectory()
        cfg = write(os.path.join(d.name, "greeksd.yaml"),
                    "breaker:\n  window_calls: 100\n  minimum_calls: 20\n  failure_rate_percent: 50\n")
        metrics_file = os.path.join(d.name, "metrics-port")
        server = Server("--config", cfg, "--metrics-listen", "127.0.0.1:0", "--metrics-port-file", metrics_file)
        try:
            with open(metrics_file) as f:
                port = int(f.read())
            write(cfg, "breaker:\n  window_calls: 1000\n  minimum_calls: 500\n  failure_rate_percent: 30\n")
            server.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5 * SLOWDOWN
            while "rejected" not in server.stderr():
                self.assertLess(time.monotonic(), deadline, server.stderr()[-2000:])
                time.sleep(0.05)
            self.assertIn("breaker.minimum_calls", server.stderr())
            self.assertIn("must not exceed breaker.window_calls 100", server.stderr())
            # and why 100, when the file now says 1000 (found in review)
            self.assertIn("breaker.window_calls: the new 1000 takes effect only at a restart; a reload checks "
                          "breaker.minimum_calls against the running 100", server.stderr())
            self.assertEqual(http_json(port, "/readyz")["config"]["version"], 1)
            self.assertNotIn("kept its thresholds", server.stderr())
        finally:
            self.assertEqual(server.stop(), 0)
            server.close()
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
