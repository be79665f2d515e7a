"""Benchmarks for s3-elector, beside etcd; run through scripts/bench, which
starts SeaweedFS (and etcd) on loopback and builds the release binary.

Method (also printed into BENCHMARKS.md):
- A copy's leadership moment is the timestamp of its own `acquired` log
  event (JSON logs, microseconds, same host clock as the bench). A trial's
  time runs from just before the signal is sent to that timestamp.
- etcd: `etcdctl lock --ttl=T` contenders; the moment is when the new holder
  prints its lock key (read from its stdout as it arrives).
- Requests are counted on the wire by a counting proxy in front of
  SeaweedFS, per copy, not by the daemons' own counters.
- The killed or stopped copy is restarted after each trial, so every trial
  has the same number of candidates; the kill comes at a random moment of
  the renewal period.

Prints Markdown on stdout; writes plots next to the output (SVG_DIR).
"""
import ctypes, datetime, json, multiprocessing, os, platform, random, shutil, signal, socket
import statistics, subprocess
import sys, threading, time, urllib.request

BIN, TRIALS = sys.argv[1], int(sys.argv[2])
ENDPOINT, WORK = os.environ["S3_ENDPOINT"], os.environ["WORK"]
SVG_DIR = os.environ.get("SVG_DIR", "docs")
IDLE = int(os.environ.get("BENCH_IDLE_SECONDS", "300"))
SCALE = [int(x) for x in os.environ.get("BENCH_SCALE", "3,10,50,100").split(",") if x]
# Trials per scale point: more where they are cheap (up to 10 candidates).
SCALE_TRIALS = int(os.environ.get("BENCH_SCALE_TRIALS", "5"))
SCALE_TRIALS_SMALL = int(os.environ.get("BENCH_SCALE_TRIALS_SMALL", "20"))
EARLY_TRIALS = int(os.environ.get("BENCH_EARLY_TRIALS", "10"))
ROLLING = int(os.environ.get("BENCH_ROLLING", "5"))
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="testtest",
           AWS_EC2_METADATA_DISABLED="true", S3_ELECTOR_LOG="info", S3_ELECTOR_LOG_FORMAT="json")
PUT_PRICE, GET_PRICE = 0.005 / 1000, 0.0004 / 1000  # S3 Standard, us-east-1
HOURS_PER_MONTH = 730
random.seed(int(os.environ.get("BENCH_SEED", "1")))


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


# --- counting proxy ---------------------------------------------------------

class Proxy:
    """TCP proxy on loopback that counts HTTP requests by kind (GET, PUT,
    LIST = GET with list-type, DELETE, HEAD) by parsing the request stream.
    It runs in a process of its own: in this one, the measuring loops
    (reading every copy's log) would hold the interpreter lock and delay
    the requests it forwards by milliseconds, which the hand-over figures
    would then include."""

    KINDS = ("GET", "PUT", "LIST", "DELETE", "HEAD", "POST", "OTHER")

    def __init__(self, upstream):
        self.up = upstream.replace("http://", "").split(":")
        ctx = multiprocessing.get_context("fork")
        self.counts = ctx.Array("q", len(self.KINDS))
        self.sock = socket.socket(); self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0)); self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.parent = os.getpid()
        self.proc = ctx.Process(target=self._serve, daemon=True)
        self.proc.start()
        self.sock.close()

    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self):
        with self.counts.get_lock():
            return {k: v for k, v in zip(self.KINDS, self.counts[:]) if v}

    def _serve(self):
        # Die with the bench, however it ends (and if it ended before the
        # request took effect, now).
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL) != 0:  # PR_SET_PDEATHSIG
            raise SystemExit(f"proxy: prctl failed: {os.strerror(ctypes.get_errno())}")
        if os.getppid() != self.parent:
            os._exit(0)
        self._accept()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
                s = socket.create_connection((self.up[0], int(self.up[1])))
            except OSError:
                continue
            for sk in (c, s):
                sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(c, s, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, False), daemon=True).start()

    def _pump(self, src, dst, count):
        carry, skip = b"", 0
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if count:
                carry += data
                while True:
                    if skip:
                        k = min(skip, len(carry)); carry = carry[k:]; skip -= k
                        if skip:
                            break
                    p = carry.find(b"\r\n\r\n")
                    if p < 0:
                        break
                    head = carry[:p].decode("latin-1"); carry = carry[p + 4:]
                    line = head.split("\r\n", 1)[0].split(" ")
                    kind = line[0]
                    if kind == "GET" and len(line) > 1 and "list-type=" in line[1]:
                        kind = "LIST"
                    i = self.KINDS.index(kind) if kind in self.KINDS else len(self.KINDS) - 1
                    with self.counts.get_lock():
                        self.counts[i] += 1
                    for h in head.split("\r\n")[1:]:
                        k, _, v = h.partition(":")
                        if k.strip().lower() == "content-length":
                            skip = int(v.strip() or 0)
            try:
                dst.sendall(data)
            except OSError:
                break
        for sk in (src, dst):
            try:
                sk.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def diff(a, b):
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b) if b.get(k, 0) - a.get(k, 0)}


def monthly_cost(per_hour):
    puts = sum(v for k, v in per_hour.items() if k in ("PUT", "LIST", "POST", "DELETE"))
    gets = sum(v for k, v in per_hour.items() if k in ("GET", "HEAD"))
    # DELETE is free on S3; counted with PUT here only if present (it is not, idle).
    return (puts * PUT_PRICE + gets * GET_PRICE) * HOURS_PER_MONTH


# --- s3-elector copies ------------------------------------------------------

def config(name, lease, renew, retry, endpoint=ENDPOINT, request_timeout="1s", registry=True):
    path = f"{WORK}/{name}-{abs(hash(endpoint)) % 10**6}.yaml"
    with open(path, "w") as f:
        f.write(f"election: {name}\ns3:\n  bucket: bench\n  endpoint_url: {endpoint}\n"
                f"  force_path_style: true\n  region: us-east-1\n  request_timeout: {request_timeout}\n"
                f"  connect_timeout: 300ms\n"
                f"timing:\n  lease_duration: {lease}\n  renew_deadline: {renew}\n  retry_period: {retry}\n"
                f"http:\n  step_down: true\nregistry:\n  enabled: {'true' if registry else 'false'}\n")
    return path


def ts_of(line):
    t = line.get("timestamp", "")
    return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()


class Copy:
    def __init__(self, cfg, ident):
        self.port, self.ident, self.cfg = free_port(), ident, cfg
        self.logpath = f"{WORK}/{ident}.log"
        open(self.logpath, "w").close()
        self.offset, self.acquired, self.released, self.successors = 0, [], [], []
        self.started = time.time()
        self.p = subprocess.Popen([BIN, "run", "--config", cfg], env=dict(
            ENV, S3_ELECTOR_IDENTITY=ident, S3_ELECTOR_HTTP_LISTEN=f"127.0.0.1:{self.port}"),
            stdout=subprocess.DEVNULL, stderr=open(self.logpath, "ab"))

    def alive(self):
        return self.p.poll() is None

    def scan(self):
        with open(self.logpath, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for raw in data[:end].splitlines():
            try:
                j = json.loads(raw)
            except ValueError:
                continue
            if j.get("event") == "acquired":
                self.acquired.append(ts_of(j))
            elif j.get("event") == "released":
                self.released.append(ts_of(j))
            elif j.get("message") == "successors checked":
                self.successors = j.get("successors") or []

    def acquired_after(self, t):
        self.scan()
        return next((a for a in self.acquired if a >= t), None)

    def leads(self):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.port}/leader/health", timeout=1).status == 200
        except Exception:
            return False

    def rss_kib(self):
        return rss_kib(self.p.pid)

    def metrics(self):
        """Renewals and reads by this copy's own count (GET /metrics)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2).read().decode()
        out = {"renewals": 0, "gets": 0}
        for line in text.splitlines():
            if line.startswith("s3_elector_renew_latency_seconds_count"):
                out["renewals"] = float(line.split()[-1])
            elif line.startswith("s3_elector_s3_requests_total") and 'operation="get"' in line:
                out["gets"] += float(line.split()[-1])
        return out

    def cpu_ticks(self):
        return cpu_ticks(self.p.pid)

    def stop(self, sig=signal.SIGTERM):
        if self.alive():
            self.p.send_signal(sig)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill(); self.p.wait()


def rss_parts_kib(pid, binary):
    """Resident KiB of one process by kind: private (anonymous, including
    the binary's relocated pages), the binary's own file pages, and the
    shared libraries' file pages (libc, libm, ld.so, libgcc_s)."""
    parts = {"private": 0, "binary": 0, "libs": 0}
    path, rss = None, 0
    binary = os.path.realpath(binary)
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                # The path is the sixth field and may contain spaces.
                fields = line.rstrip("\n").split(None, 5)
                path = fields[5].removesuffix(" (deleted)") if len(fields) > 5 else None
            elif head[0] == "Rss:":
                rss = int(head[1])
            elif head[0] == "Anonymous:":
                anon = int(head[1])
                parts["private"] += anon
                if path and path.startswith("/") and rss > anon:
                    parts["binary" if os.path.realpath(path) == binary else "libs"] += rss - anon
    return parts


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])


def wait_leader(copies, timeout=180):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for c in copies:
            if c.alive() and c.leads():
                return c
        if all(not c.alive() for c in copies):
            raise SystemExit(f"every copy exited; see {copies[0].logpath}")
        time.sleep(0.01)
    raise SystemExit("no leader")


def wait_acquired(copies, t, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = [(a, c) for c in copies if c.alive() for a in [c.acquired_after(t)] if a]
        if got:
            a, c = min(got, key=lambda x: x[0])
            return c, a - t
        if all(not c.alive() for c in copies):
            raise SystemExit(f"every copy exited; {copies[0].logpath} ends: "
                             + open(copies[0].logpath).read()[-1500:])
        time.sleep(0.005)
    raise SystemExit("nobody acquired")


def wait_candidates(copies, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if all(json.load(urllib.request.urlopen(f"http://127.0.0.1:{c.port}/leader", timeout=1))
                   .get("candidate") for c in copies):
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit("copies never became candidates again after a step-down")


def secs(v):
    return float(v[:-2]) / 1000 if v.endswith("ms") else float(v[:-1])


def trials(copies, cfg, kind, n, retry_s, restart=True):
    out = []
    for i in range(n):
        leader = wait_leader(copies)
        # Let every copy settle into the leader's renewal phase, then strike
        # at a random moment of the renewal period.
        time.sleep(3 * retry_s + random.uniform(0, retry_s))
        others = [c for c in copies if c is not leader]
        if kind == "STEP":
            # A copy that stepped down sits out `step_down_cooloff` (10 s);
            # measure hand-over to copies that compete, as in a real fleet.
            wait_candidates(others)
        t = time.time()
        if kind == "KILL":
            leader.p.send_signal(signal.SIGKILL)
        elif kind == "TERM":
            leader.p.send_signal(signal.SIGTERM)
        else:
            urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{leader.port}/step-down", method="POST"), timeout=2)
        _, took = wait_acquired(others, t)
        out.append(took)
        if kind != "STEP":
            leader.stop(signal.SIGKILL if kind == "KILL" else signal.SIGTERM)
            if restart:
                copies[copies.index(leader)] = Copy(cfg, leader.ident)
        log(f"  {kind} trial {i + 1}/{n}: {took * 1000:.0f} ms")
    return out


def kill_named_trials(copies, cfg, n, retry_s):
    """The leader and every successor it names die at once (SIGKILL); a
    copy it did not name (a far follower) must take over. Seconds from the
    kill to the next `acquired`."""
    out = []
    for i in range(n):
        leader = wait_leader(copies)
        # Until the leader names 8 successors (its checks run every 2 P).
        end = time.monotonic() + 60
        while time.monotonic() < end:
            leader.scan()
            if len(leader.successors) >= 8:
                break
            time.sleep(0.1)
        time.sleep(6 * retry_s + random.uniform(0, retry_s))
        leader.scan()
        doomed = [leader] + [c for c in copies if c.ident in leader.successors]
        rest = [c for c in copies if c not in doomed]
        t = time.time()
        for c in doomed:
            c.p.send_signal(signal.SIGKILL)
        _, took = wait_acquired(rest, t)
        out.append(took)
        for c in doomed:
            c.stop(signal.SIGKILL)
            copies[copies.index(c)] = Copy(cfg, c.ident)
        log(f"  KILL leader + {len(doomed) - 1} named trial {i + 1}/{n}: {took * 1000:.0f} ms")
    return out


def early_stop_trials(n):
    """A leader stopped (SIGTERM) 0.2-1 s after it acquired, before it has
    checked any candidate: seconds from the stop to the next `acquired`."""
    cfg = config("early", "3s", "1s", "500ms", request_timeout="800ms")
    copies = [Copy(cfg, f"early-{i}") for i in range(3)]
    out = []
    for i in range(n):
        first = wait_leader(copies)
        time.sleep(2)
        t0 = time.time()
        first.p.send_signal(signal.SIGTERM)
        others = [c for c in copies if c is not first]
        new, _ = wait_acquired(others, t0)
        acquired = new.acquired_after(t0)
        first.stop()
        copies[copies.index(first)] = Copy(cfg, first.ident)
        delay = random.uniform(0.2, 1.0)
        time.sleep(max(0.0, acquired + delay - time.time()))
        t = time.time()
        new.p.send_signal(signal.SIGTERM)
        rest = [c for c in copies if c is not new]
        _, took = wait_acquired(rest, t)
        out.append((t - acquired, took))
        new.stop()
        copies[copies.index(new)] = Copy(cfg, new.ident)
        log(f"  early stop trial {i + 1}/{n}: stopped {t - acquired:.2f} s after acquiring, "
            f"next leader {took * 1000:.0f} ms later")
    for c in copies:
        c.stop()
    return out


def ready(c):
    try:
        v = json.load(urllib.request.urlopen(f"http://127.0.0.1:{c.port}/leader", timeout=1))
        return v.get("ready") and v.get("candidate")
    except Exception:
        return False


def rolling_restart(n):
    """A rolling restart of n copies, one after another: each copy's
    replacement is started, and the copy is stopped (SIGTERM) as soon as the
    replacement is ready. The worst order for leaderless time: the next copy
    replaced is always the leader while an old copy leads, and replacements'
    identities sort after the old copies', so the first-named successor of
    each stopped leader is another old copy while one is left, and the
    lease moves n times.
    Leaderless time per step: from the stopped leader's release to the next
    `acquired` (0 when the stopped copy did not lead)."""
    cfg = config("rolling", "3s", "1s", "500ms", request_timeout="800ms")
    olds = [Copy(cfg, f"roll-a-{i}") for i in range(n)]
    copies = list(olds)
    wait_leader(copies)
    time.sleep(3)
    steps = []
    for i in range(n):
        leader = wait_leader(copies)
        old = leader if leader in olds else olds[0]
        olds.remove(old)
        new = Copy(cfg, f"roll-b-{i}")
        end = time.monotonic() + 60
        while not ready(new):
            if time.monotonic() > end:
                raise SystemExit(f"replacement {new.ident} never became ready")
            time.sleep(0.01)
        copies.append(new)
        t = time.time()
        old.stop()
        copies.remove(old)
        # It led if it released the lease as it stopped (its own log says
        # so; a health check could miss it on a busy machine).
        old.scan()
        rel = next((r for r in old.released if r >= t), None)
        led, gap = rel is not None, 0.0
        if led:
            _, gap = wait_acquired(copies, rel)
        steps.append((led, gap))
        log(f"  rolling step {i + 1}/{n}: stopped {old.ident}{' (leader)' if led else ''}, leaderless {gap * 1000:.0f} ms")
        time.sleep(1)
    for c in copies:
        c.stop()
    return steps


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def row(xs, unit=1.0, fmt="{:.3f}"):
    f = lambda v: fmt.format(v / unit)
    return f"{f(min(xs))} | {f(statistics.median(xs))} | {f(pct(xs, 0.99))} | {f(max(xs))}"


def first_leadership(lease, renew, retry, rt, n):
    fresh, expired = [], []
    for i in range(n):
        name = f"first{lease}{i}-{random.randrange(10**6)}"
        cfg = config(name, lease, renew, retry, request_timeout=rt)
        c = Copy(cfg, f"{name}-a")
        took = wait_acquired([c], c.started)[1]
        fresh.append(took)
        # Crash it: the key now holds a live-looking record nobody renews.
        c.stop(signal.SIGKILL)
        d = Copy(cfg, f"{name}-b")
        expired.append(wait_acquired([d], d.started)[1])
        d.stop()
    return fresh, expired


# --- etcd -------------------------------------------------------------------

class Etcd:
    def __init__(self):
        self.client, self.peer = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.client}"
        d = f"{WORK}/etcd"
        self.p = subprocess.Popen([
            "etcd", "--name", "bench", "--data-dir", d,
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", f"http://127.0.0.1:{self.peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer}",
            "--initial-cluster", f"bench=http://127.0.0.1:{self.peer}",
            "--listen-metrics-urls", f"http://127.0.0.1:{free_port()}",
        ], stdout=subprocess.DEVNULL, stderr=open(f"{WORK}/etcd.log", "ab"))
        end = time.monotonic() + 30
        while time.monotonic() < end:
            r = subprocess.run(["etcdctl", "--endpoints", self.url, "endpoint", "health"],
                               env=dict(os.environ, ETCDCTL_API="3"), capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise SystemExit("etcd did not become healthy; see etcd.log")

    def stop(self):
        self.p.terminate(); self.p.wait(10)


class Locker:
    """One `etcdctl lock --ttl=T` contender; `got` is when it printed its key."""

    def __init__(self, etcd, name, ttl):
        self.p = subprocess.Popen(["etcdctl", "--endpoints", etcd.url, "lock", f"--ttl={ttl}", name],
                                  env=dict(os.environ, ETCDCTL_API="3"), stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        self.got = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            if line.strip() and self.got is None:
                self.got = time.time()

    def alive(self):
        return self.p.poll() is None


def etcd_trials(etcd, ttl, kind, n, lockers_box):
    out = []
    name = f"bench-{ttl}"
    for i in range(n):
        lockers = lockers_box
        end = time.monotonic() + 120
        while not any(l.got and l.alive() for l in lockers):
            if time.monotonic() > end:
                raise SystemExit("etcd: no holder")
            time.sleep(0.01)
        holder = next(l for l in lockers if l.got and l.alive())
        time.sleep(1 + random.uniform(0, ttl / 3))
        t = time.time()
        holder.p.send_signal(signal.SIGKILL if kind == "KILL" else signal.SIGTERM)
        end = time.monotonic() + 120
        while True:
            new = [l for l in lockers if l is not holder and l.got and l.got >= t]
            if new:
                out.append(min(l.got for l in new) - t)
                break
            if time.monotonic() > end:
                raise SystemExit("etcd: nobody took the lock")
            time.sleep(0.002)
        holder.p.wait(10)
        lockers[lockers.index(holder)] = Locker(etcd, name, ttl)
        log(f"  etcd ttl={ttl} {kind} trial {i + 1}/{n}: {out[-1] * 1000:.0f} ms")
    return out


# --- plots ------------------------------------------------------------------

def svg_line(path, title, xlabel, ylabel, series):
    """A small line chart: series = [(label, color, [(x, y), ...])]."""
    W, H, L, R, T, B = 520, 300, 70, 20, 40, 50
    xs = [x for _, _, pts in series for x, _ in pts]
    ys = [y for _, _, pts in series for _, y in pts] + [0]
    x0, x1, y1 = min(xs), max(xs), max(ys) * 1.1 or 1
    sx = lambda x: L + (x - x0) / ((x1 - x0) or 1) * (W - L - R)
    sy = lambda y: H - B - y / y1 * (H - T - B)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
           f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">{xlabel}</text>',
           f'<text x="16" y="{H / 2}" text-anchor="middle" transform="rotate(-90 16 {H / 2})">{ylabel}</text>']
    for i in range(5):
        v = y1 * i / 4
        out.append(f'<text x="{L - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
        out.append(f'<line x1="{L}" y1="{sy(v):.1f}" x2="{W - R}" y2="{sy(v):.1f}" stroke="#ddd"/>')
    for x in sorted(set(xs)):
        out.append(f'<text x="{sx(x):.1f}" y="{H - B + 16}" text-anchor="middle">{x:g}</text>')
    for k, (label, color, pts) in enumerate(series):
        d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
        out.append(f'<text x="{L + 10}" y="{T + 14 + 16 * k}" fill="{color}">{label}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# --- the run ----------------------------------------------------------------

def machine():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip(); break
    except OSError:
        pass
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) / 1024 / 1024
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    etcdv = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0] \
        if shutil.which("etcd") else "etcd not installed"
    return (f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}; "
            f"SeaweedFS 4.48 (`weed mini`) and {etcdv} on loopback; s3-elector commit {rev}, release build")


def main():
    res = {}
    sets = [("fast", "3s", "1s", "500ms", "800ms"), ("default", "15s", "10s", "2s", "3s")]
    for name, lease, renew, retry, rt in sets:
        log(f"timing set {name}: {lease}/{renew}/{retry}")
        cfg = config(name, lease, renew, retry, request_timeout=rt)
        copies = [Copy(cfg, f"{name}-{i}") for i in range(3)]
        wait_leader(copies)
        r = {}
        for kind in ("KILL", "TERM", "STEP"):
            r[kind] = trials(copies, cfg, kind, TRIALS, secs(retry))
        for c in copies:
            c.stop()
        r["first_fresh"], r["first_expired"] = first_leadership(lease, renew, retry, rt, 3)
        res[name] = r

    # Requests by role and footprint, at the defaults, over IDLE seconds.
    log(f"idle run: {IDLE} s")
    proxies = [Proxy(ENDPOINT), Proxy(ENDPOINT)]
    idle = [Copy(config("idle", "15s", "10s", "2s", endpoint=p.endpoint(), request_timeout="3s"), f"idle-{i}")
            for i, p in enumerate(proxies)]
    leader = wait_leader(idle)
    time.sleep(10)
    li = idle.index(leader)
    snap = [p.snapshot() for p in proxies]
    own = [c.metrics() for c in idle]
    t0, ticks = time.monotonic(), [c.cpu_ticks() for c in idle]
    time.sleep(IDLE)
    dt = time.monotonic() - t0
    hz = os.sysconf("SC_CLK_TCK")
    roles = {}
    for i, c in enumerate(idle):
        role = "leader" if i == li else "follower"
        counts = diff(snap[i], proxies[i].snapshot())
        m = c.metrics()
        roles[role] = {
            "per_hour": {k: v * 3600 / dt for k, v in counts.items()},
            "wire": counts,
            "renewals": m["renewals"] - own[i]["renewals"],
            "own_gets": m["gets"] - own[i]["gets"],
            "periods": dt / 2.0,
            "rss_mib": c.rss_kib() / 1024,
            "parts_mib": {k: v / 1024 for k, v in rss_parts_kib(c.p.pid, BIN).items()},
            "cpu_pct": (c.cpu_ticks() - ticks[i]) / hz / dt * 100,
        }
    still = idle[li].leads()
    for c in idle:
        c.stop()

    # Scale.
    scale = {}
    for n in SCALE:
        log(f"scale: {n} candidates")
        proxy = Proxy(ENDPOINT)
        cfg = config(f"scale{n}", "3s", "1s", "500ms", endpoint=proxy.endpoint(), request_timeout="800ms")
        copies = []
        for i in range(n):
            copies.append(Copy(cfg, f"scale{n}-{i:03d}"))
            time.sleep(0.02)
        wait_leader(copies, timeout=300)
        time.sleep(10)
        a, t0 = proxy.snapshot(), time.monotonic()
        time.sleep(20)
        rate = {k: v * 3600 / (time.monotonic() - t0) for k, v in diff(a, proxy.snapshot()).items()}
        k = SCALE_TRIALS_SMALL if n <= 10 else SCALE_TRIALS
        crash = trials(copies, cfg, "KILL", k, 0.5)
        grace = trials(copies, cfg, "TERM", k, 0.5)
        named = kill_named_trials(copies, cfg, SCALE_TRIALS, 0.5) if n >= 10 else []
        scale[n] = {"per_hour": rate, "crash": crash, "grace": grace, "kill_named": named}
        for c in copies:
            c.stop()

    log(f"early stop: {EARLY_TRIALS} trials")
    early = early_stop_trials(EARLY_TRIALS)
    log(f"rolling restart of {ROLLING}")
    rolling = rolling_restart(ROLLING)

    # etcd.
    etcd_res = {}
    if shutil.which("etcd") and shutil.which("etcdctl"):
        etcd = Etcd()
        for ttl in (3, 15):
            log(f"etcd ttl={ttl}")
            lockers = [Locker(etcd, f"bench-{ttl}", ttl) for _ in range(3)]
            e = {"KILL": etcd_trials(etcd, ttl, "KILL", TRIALS, lockers),
                 "TERM": etcd_trials(etcd, ttl, "TERM", TRIALS, lockers)}
            time.sleep(2)
            holder = next(l for l in lockers if l.got and l.alive())
            waiter = next(l for l in lockers if l is not holder and l.alive())
            e["rss_holder"], e["rss_waiter"] = rss_kib(holder.p.pid) / 1024, rss_kib(waiter.p.pid) / 1024
            e["rss_server"] = rss_kib(etcd.p.pid) / 1024
            for l in lockers:
                l.p.kill(); l.p.wait()
            etcd_res[ttl] = e
        etcd.stop()

    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump({"res": res, "roles": roles, "still": still,
                   "scale": {str(k): v for k, v in scale.items()},
                   "early": early, "rolling": rolling,
                   "etcd": {str(k): v for k, v in etcd_res.items()}}, f)
    report(res, roles, still, scale, etcd_res, early, rolling)


def report(res, roles, still, scale, etcd_res, early, rolling):
    P = print
    P("# Benchmarks\n")
    P(f"Produced by `scripts/bench {TRIALS}` on {time.strftime('%Y-%m-%d')} (about 30 minutes). Machine: {machine()}.\n")
    P("Regenerate with `scripts/bench [TRIALS]` from a fresh clone; it installs SeaweedFS and etcd, "
      "builds the release binary and rewrites this file and `docs/bench-*.svg`. "
      "Nothing here is asserted by `scripts/test`.\n")
    P("## How it is measured\n")
    P("- 3 candidates on one election against SeaweedFS on loopback, unless stated. A copy's moment of "
      "leadership is the timestamp of its own `acquired` log event; a trial runs from just before the "
      "signal (or `POST /step-down`) to that moment. The stopped copy is restarted after each trial, and "
      "each signal comes at a random moment of the renewal period, after the others had three periods "
      "to settle. A step-down trial starts once the other copies compete again (a copy that stepped "
      "down sits out `step_down_cooloff`, 10 s).")
    P("- etcd: three `etcdctl lock --ttl=T` contenders (the same session-lease-and-watch mechanism as "
      "`etcdctl elect`, which has no TTL flag and always uses 60 s); the moment is when the new holder "
      "prints its key.")
    P("- Requests are counted on the wire by a counting proxy in front of SeaweedFS, per copy.")
    P("- Cost: S3 Standard us-east-1, $0.005 per 1,000 PUT/LIST, $0.0004 per 1,000 GET, 730 h a month.\n")

    f, d = res["fast"], res["default"]
    e3, e15 = etcd_res.get(3), etcd_res.get(15)
    P("## Targets\n")
    P("| target | where it stands | met |")
    P("|---|---|---|")
    def tgt(name, value, ok):
        P(f"| {name} | {value} | {'yes' if ok else '**no**'} |")
    for label, r, L, R in (("3s/1s/0.5s", f, 3.0, 0.5), ("15s/10s/2s", d, 15.0, 2.0)):
        p99 = pct(r["KILL"], 0.99)
        tgt(f"crash failover p99 ≤ lease + retry + 0.2 s ({label})", f"{p99:.3f} s (limit {L + R + 0.2:.1f} s)", p99 <= L + R + 0.2)
        g = pct(r["TERM"], 0.99)
        tgt(f"graceful hand-over p99 ≤ retry + 0.2 s ({label})", f"{g * 1000:.0f} ms", g <= R + 0.2)
        tgt(f"graceful hand-over p99 ≤ 50 ms, 3 candidates ({label})", f"{g * 1000:.0f} ms", g <= 0.05)
    tgt("crash failover at 3 s lease: median ≤ 3.0 s", f"{statistics.median(f['KILL']):.3f} s", statistics.median(f["KILL"]) <= 3.0)
    tgt("crash failover at 3 s lease: p99 ≤ 3.5 s", f"{pct(f['KILL'], 0.99):.3f} s", pct(f["KILL"], 0.99) <= 3.5)
    for n in sorted(scale):
        g = pct(scale[n]["grace"], 0.99)
        tgt(f"graceful hand-over p99 ≤ 20 ms with {n} candidates (3s/1s/0.5s)",
            f"{g * 1000:.0f} ms over {len(scale[n]['grace'])} trials", g <= 0.02)
    if early:
        e = [took for _, took in early]
        tgt("hand-over of a leader stopped 0.2-1 s after acquiring: p99 ≤ 50 ms, no poll (3s/1s/0.5s)",
            f"{pct(e, 0.99) * 1000:.0f} ms over {len(e)} trials (worst {max(e) * 1000:.0f} ms)",
            pct(e, 0.99) <= 0.05 and max(e) < 0.5)
    if rolling:
        total = sum(g for _, g in rolling)
        tgt(f"rolling restart of {len(rolling)} copies: leaderless ≤ 100 ms in all",
            f"{total * 1000:.0f} ms over {sum(1 for led, _ in rolling if led)} leader stop(s)", total <= 0.1)
    if 10 in scale and 100 in scale:
        r10 = sum(scale[10]["per_hour"].values())
        r100 = sum(scale[100]["per_hour"].values())
        tgt("requests per hour, all copies: 100 candidates ≤ 3 × 10 candidates",
            f"{r100:,.0f} vs {r10:,.0f} ({r100 / r10:.1f}×)", r100 <= 3 * r10)
    for n in sorted(scale):
        kn = scale[n].get("kill_named") or []
        if kn:
            tgt(f"leader and all named successors killed, {n} candidates: failover ≤ lease + 2 × retry (4 s)",
                f"max {max(kn):.3f} s over {len(kn)} trials", max(kn) <= 4.0)
    L_, F_ = roles["leader"], roles["follower"]
    lw = L_["wire"]
    renew_reqs = lw.get("PUT", 0) + lw.get("GET", 0)
    # The wire count and the daemon's count are read a few ms apart, so a
    # renewal in flight can fall on either side of the window's edges (±1);
    # the registry entry adds at most one PUT.
    tgt("exactly 1 PUT per renewal, no reads", f"{lw.get('PUT', 0)} PUT on the wire for "
        f"{L_['renewals']:.0f} renewals (±1 at the window's edges, +1 for the registry entry); "
        f"{lw.get('GET', 0)} GET, all after the {lw.get('LIST', 0)} registry LIST(s)", L_["renewals"] > 0 and
        (lw.get("GET", 0) == 0 or lw.get("LIST", 0) > 0) and -1 <= lw.get("PUT", 0) - L_["renewals"] <= 2)
    fw = F_["wire"]
    tgt("at most 1 request per follower poll", f"{sum(fw.values())} requests on the wire for "
        f"{F_['own_gets']:.0f} reads by the follower's own count "
        f"({F_['own_gets'] / F_['periods']:.2f} reads per renewal period)",
        F_["own_gets"] > 0 and sum(fw.values()) <= F_["own_gets"] + 1)
    rss = max(roles["leader"]["rss_mib"], roles["follower"]["rss_mib"])
    tgt("RSS of an idle copy ≤ 8 MiB", f"{rss:.1f} MiB", rss <= 8)
    size_mib = os.path.getsize(BIN) / 1024 / 1024
    tgt("stripped binary ≤ 8 MiB", f"{size_mib:.1f} MiB", size_mib <= 8)
    cpu = max(roles["leader"]["cpu_pct"], roles["follower"]["cpu_pct"])
    tgt("idle CPU ≤ 0.1 % of a core", f"{cpu:.3f} %", cpu <= 0.1)
    fl = max(max(f["first_fresh"]), max(d["first_fresh"]))
    tgt("first leadership ≤ 150 ms after start (fresh key)", f"{fl * 1000:.0f} ms worst of 6", fl <= 0.15)
    P("")

    P(f"## Failover and hand-over ({TRIALS} trials each)\n")
    P("Seconds from the signal to a new leader. Overhead = time beyond `lease_duration` "
      "(negative: the last renewal was seen before the crash, and the lease ran from there).\n")
    P("| system | timings | measure | min | median | p99 | max | overhead beyond lease (median / p99) |")
    P("|---|---|---|---|---|---|---|---|")
    for label, r, L in (("3s/1s/0.5s", f, 3.0), ("15s/10s/2s", d, 15.0)):
        k = r["KILL"]
        P(f"| s3-elector | {label} | crash failover (SIGKILL) | {row(k)} | "
          f"{statistics.median(k) - L:+.3f} / {pct(k, 0.99) - L:+.3f} |")
        P(f"| s3-elector | {label} | graceful hand-over (SIGTERM) | {row(r['TERM'])} | |")
        P(f"| s3-elector | {label} | step-down hand-over (`POST /step-down`) | {row(r['STEP'])} | |")
    for ttl, e in sorted(etcd_res.items()):
        P(f"| etcd lock | ttl {ttl} s | crash failover (SIGKILL) | {row(e['KILL'])} | "
          f"{statistics.median(e['KILL']) - ttl:+.3f} / {pct(e['KILL'], 0.99) - ttl:+.3f} |")
        P(f"| etcd lock | ttl {ttl} s | graceful hand-over (SIGTERM) | {row(e['TERM'])} | |")
    P("")
    if e3 and e15:
        P("### Beside etcd (ratio s3-elector / etcd, median and p99)\n")
        P("| measure | at 3 s | at 15 s |")
        P("|---|---|---|")
        ratio = lambda a, b: f"{statistics.median(a) / statistics.median(b):.2f} / {pct(a, 0.99) / pct(b, 0.99):.2f}"
        P(f"| crash failover | {ratio(f['KILL'], e3['KILL'])} | {ratio(d['KILL'], e15['KILL'])} |")
        P(f"| graceful hand-over | {ratio(f['TERM'], e3['TERM'])} | {ratio(d['TERM'], e15['TERM'])} |")
        P(f"| RSS of the electing process (leader / waiting) | "
          f"{roles['leader']['rss_mib']:.1f} / {roles['follower']['rss_mib']:.1f} MiB vs etcdctl "
          f"{e3['rss_holder']:.1f} / {e3['rss_waiter']:.1f} MiB "
          f"(the etcd server itself: {e3['rss_server']:.1f} MiB) | |")
        P("")
        P("etcd's crash failover is shorter than its TTL because the server counts the TTL from the "
          "holder's last keep-alive (sent every TTL/3), while an S3 follower must see the record "
          "unchanged for a full lease on its own clock: it cannot know when the holder last wrote. "
          "etcd's hand-over is a watch event pushed by the server; s3-elector's is a release write, "
          "a wake-up over HTTP, one read and one conditional write.\n")

    P("## First leadership (3 trials each)\n")
    P("Seconds from process start (configuration, credentials, the store conformance probe's six "
      "requests, the first read) to `acquired`.\n")
    P("| timings | fresh key | expired key (holder crashed just before) |")
    P("|---|---|---|")
    for label, r in (("3s/1s/0.5s", f), ("15s/10s/2s", d)):
        P(f"| {label} | {', '.join(f'{x:.3f}' for x in r['first_fresh'])} | "
          f"{', '.join(f'{x:.2f}' for x in r['first_expired'])} |")
    P("\nOn an expired key a new copy must still wait a full lease from its first read: it cannot "
      "know how long ago the record was written.\n")

    P(f"## S3 requests per hour by role (defaults 15s/10s/2s, {IDLE} s idle, counted on the wire)\n")
    P("| role | GET | PUT | LIST | other | cost per month |")
    P("|---|---|---|---|---|---|")
    for role in ("leader", "follower"):
        ph = roles[role]["per_hour"]
        other = sum(v for k, v in ph.items() if k not in ("GET", "PUT", "LIST"))
        P(f"| {role} | {ph.get('GET', 0):.0f} | {ph.get('PUT', 0):.0f} | {ph.get('LIST', 0):.0f} | "
          f"{other:.0f} | ${monthly_cost(ph):.2f} |")
    P(f"\nThe leader {'kept' if still else 'did NOT keep'} the lease through the idle run. Its PUTs are "
      "one per renewal (every 2 s) plus its registry entry every 10 min; its LISTs read the candidate "
      "registry every 5 min (more often in a short run: it also lists when it acquires and when a copy "
      "joins). The follower's reads are one per renewal period plus the occasional "
      "early read of phase-aligned polling (see docs/design.md).\n")
    P("Before this work (commit 109b9dd, same defaults, computed from its fixed schedule): leader 1,800 "
      "PUT/h ($6.57/month), follower 1,636 GET/h on average (2 s × up to 1.2 jitter; $0.48/month).\n")

    P(f"## Footprint ({IDLE} s idle at the defaults)\n")
    P("| role | RSS | private (anonymous) | the binary's file pages | shared libraries' file pages | CPU (% of one core) |")
    P("|---|---|---|---|---|---|")
    for role in ("leader", "follower"):
        r = roles[role]
        q = r["parts_mib"]
        P(f"| {role} | {r['rss_mib']:.1f} MiB | {q['private']:.1f} MiB | {q['binary']:.1f} MiB | "
          f"{q['libs']:.1f} MiB | {r['cpu_pct']:.3f} % |")
    P("\nFrom /proc/PID/smaps. The file pages are clean page cache shared by every copy on the host "
      "(and with the page cache itself); the private part is what each copy adds. The kernel maps "
      "file pages 64 KiB around each fault, so almost all of the binary's code shows as resident "
      "whatever part of it runs (see \"Binary size\" below).")
    size = os.path.getsize(BIN)
    P(f"\nRelease binary (stripped): {size / 1024 / 1024:.1f} MiB.\n")

    if scale:
        P(f"## Scale (3s/1s/0.5s, one election, {SCALE_TRIALS_SMALL} trials each up to 10 candidates, "
          f"{SCALE_TRIALS} above)\n")
        P("| candidates | crash failover median / max (s) | graceful hand-over median / p99 / max (ms) | "
          "leader + all named successors killed: median / max (s) | "
          "requests per hour, all copies (GET / PUT / LIST) | per follower GET/h | cost per month at these timings |")
        P("|---|---|---|---|---|---|---|")
        pts_cost, pts_fail, pts_grace = [], [], []
        for n, s in sorted(scale.items()):
            ph = s["per_hour"]
            cost = monthly_cost(ph)
            per_f = (ph.get("GET", 0)) / max(1, n - 1)
            kn = s.get("kill_named") or []
            kn_cell = f"{statistics.median(kn):.3f} / {max(kn):.3f}" if kn else "n/a (no copy left unnamed)"
            P(f"| {n} | {statistics.median(s['crash']):.3f} / {max(s['crash']):.3f} | "
              f"{statistics.median(s['grace']) * 1000:.0f} / {pct(s['grace'], 0.99) * 1000:.0f} / {max(s['grace']) * 1000:.0f} | "
              f"{kn_cell} | "
              f"{ph.get('GET', 0):.0f} / {ph.get('PUT', 0):.0f} / {ph.get('LIST', 0):.0f} | {per_f:.0f} | ${cost:.2f} |")
            pts_cost.append((n, cost)); pts_fail.append((n, statistics.median(s["crash"])))
            pts_grace.append((n, statistics.median(s["grace"]) * 1000))
        os.makedirs(SVG_DIR, exist_ok=True)
        svg_line(f"{SVG_DIR}/bench-scale-cost.svg", "S3 cost per month vs candidates (3s/1s/0.5s)",
                 "candidates", "USD per month", [("all copies", "#1f77b4", pts_cost)])
        svg_line(f"{SVG_DIR}/bench-scale-failover.svg", "Failover vs candidates (3s/1s/0.5s)",
                 "candidates", "seconds / milliseconds",
                 [("crash failover median (s)", "#d62728", pts_fail),
                  ("graceful hand-over median (ms / 100)", "#2ca02c", [(x, y / 100) for x, y in pts_grace])])
        P("\n![cost](docs/bench-scale-cost.svg) ![failover](docs/bench-scale-failover.svg)\n")
        P("Only the named successors (at most 8) read once per renewal period; the other followers "
          "(far followers) read about once a lease while the successor they watch answers, so reads "
          "grow with the fleet at a fraction of the rate (docs/design.md, \"Far followers\"). "
          "\"Leader + all named successors killed\" kills the leader and the 8 copies it names at once: "
          "a far follower learns it from its watch and takes over. At the defaults (2 s instead of "
          "0.5 s) every figure in the cost column is about four times smaller.\n")
    if early:
        P(f"## Early stop ({len(early)} trials, 3 candidates, 3s/1s/0.5s)\n")
        P("A leader stopped (SIGTERM) 0.2-1 s after it acquired, before it has checked any candidate: "
          "it lists the registry at its release and wakes the copies it finds.\n")
        e = [took for _, took in early]
        P(f"Next leader after the stop: min / median / p99 / max {min(e) * 1000:.0f} / "
          f"{statistics.median(e) * 1000:.0f} / {pct(e, 0.99) * 1000:.0f} / {max(e) * 1000:.0f} ms.\n")
    if rolling:
        P(f"## Rolling restart ({len(rolling)} copies, 3s/1s/0.5s)\n")
        P("Each copy's replacement is started; the copy is stopped (SIGTERM) as soon as the replacement "
          "is ready. In the worst order: while an old copy leads, it is the next one replaced, and the "
          "replacements' identities sort after the old copies', so every stopped leader but the last hands over to "
          "another old copy (the lease moves once per step). Leaderless time per step: from the stopped "
          "leader's release to the next `acquired`.\n")
        P("| step | stopped copy led | leaderless (ms) |")
        P("|---|---|---|")
        for i, (led, gap) in enumerate(rolling):
            P(f"| {i + 1} | {'yes' if led else 'no'} | {gap * 1000:.1f} |")
        P(f"\nTotal: {sum(g for _, g in rolling) * 1000:.1f} ms.\n")

    P("## Before and after\n")
    P("Recorded by `scripts/bench 10` at commit 109b9dd (before phase-aligned polling, successors "
      "and wake-ups), same machine:\n")
    P("| timings | measure | before: min / median / max | after: min / median / max |")
    P("|---|---|---|---|")
    before = {("3s/1s/0.5s", "KILL"): "3.06 / 3.12 / 3.17", ("3s/1s/0.5s", "TERM"): "0.04 / 0.12 / 0.17",
              ("15s/10s/2s", "KILL"): "15.19 / 15.38 / 15.62", ("15s/10s/2s", "TERM"): "0.16 / 0.36 / 0.70"}
    for label, r in (("3s/1s/0.5s", f), ("15s/10s/2s", d)):
        for kind, m in (("KILL", "crash failover"), ("TERM", "graceful hand-over")):
            xs = r[kind]
            P(f"| {label} | {m} | {before[(label, kind)]} s | {min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f} s |")
    P("\n(The earlier figures were read from `GET /leader/health` polled every 10 ms, which adds up "
      "to 10 ms; today's come from the log timestamps.)\n")

    P("## Raw numbers (seconds)\n")
    P("<details><summary>every trial</summary>\n")
    for name, r in res.items():
        for k, v in r.items():
            P(f"- s3-elector {name} {k}: {', '.join(f'{x:.4f}' for x in v)}")
    for ttl, e in sorted(etcd_res.items()):
        for k in ("KILL", "TERM"):
            P(f"- etcd ttl {ttl} {k}: {', '.join(f'{x:.4f}' for x in e[k])}")
    for n, s in sorted(scale.items()):
        P(f"- scale {n} crash: {', '.join(f'{x:.4f}' for x in s['crash'])}")
        P(f"- scale {n} graceful: {', '.join(f'{x:.4f}' for x in s['grace'])}")
        if s.get("kill_named"):
            P(f"- scale {n} leader + named killed: {', '.join(f'{x:.4f}' for x in s['kill_named'])}")
    for after, took in early:
        P(f"- early stop: stopped {after:.3f} s after acquiring, next leader {took:.4f} s later")
        P(f"- scale {n} requests per hour: {json.dumps({k: round(v) for k, v in s['per_hour'].items()})}")
    for role, v in roles.items():
        P(f"- idle {role} requests per hour: {json.dumps({k: round(x) for k, x in v['per_hour'].items()})}")
    P("\n</details>")


if __name__ == "__main__":
    main()
