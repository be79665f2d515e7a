"""Benchmarks for s3-elector; run through scripts/bench (which starts SeaweedFS).

Leadership is read from each copy's own GET /leader/health, polled every
10 ms, so the figures include the time a copy needs to notice, not only the
S3 writes. Prints Markdown on stdout.
"""
import json, os, platform, signal, socket, statistics, subprocess, sys, time, urllib.request

BIN, TRIALS = sys.argv[1], int(sys.argv[2])
ENDPOINT, WORK = os.environ["S3_ENDPOINT"], os.environ["WORK"]
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="testtest",
           AWS_EC2_METADATA_DISABLED="true", S3_ELECTOR_LOG="warn")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def config(name, lease, renew, retry, request_timeout="1s"):
    path = f"{WORK}/{name}.yaml"
    with open(path, "w") as f:
        f.write(f"election: {name}\ns3:\n  bucket: bench\n  endpoint_url: {ENDPOINT}\n"
                f"  force_path_style: true\n  region: us-east-1\n  request_timeout: {request_timeout}\n  connect_timeout: 300ms\n"
                f"timing:\n  lease_duration: {lease}\n  renew_deadline: {renew}\n  retry_period: {retry}\n")
    return path


class Copy:
    def __init__(self, cfg, ident):
        self.port = free_port()
        self.ident = ident
        self.p = subprocess.Popen([BIN, "run", "--config", cfg], env=dict(
            ENV, S3_ELECTOR_IDENTITY=ident, S3_ELECTOR_HTTP_LISTEN=f"127.0.0.1:{self.port}"),
            stdout=subprocess.DEVNULL, stderr=open(f"{WORK}/{ident}.log", "ab"))
        self.started = time.monotonic()

    def leads(self):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.port}/leader/health", timeout=1).status == 200
        except Exception:
            return False

    def rss_kib(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])

    def cpu_ticks(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill(); self.p.wait()


def wait_leader(copies, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for c in copies:
            if c.p.poll() is None and c.leads():
                return c
        time.sleep(0.01)
        dead = [c for c in copies if c.p.poll() is not None]
        if dead and len(dead) == len(copies):
            log = open(f"{WORK}/{dead[0].ident}.log").read()[-2000:]
            raise SystemExit(f"every copy exited; {dead[0].ident}'s log ends:\n{log}")
    raise SystemExit("no leader")


def stats(xs):
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]
    return f"{xs[0]:.2f} | {statistics.median(xs):.2f} | {p99:.2f} | {xs[-1]:.2f}"


def run_set(label, lease, renew, retry, request_timeout):
    name = label.split()[0]
    cfg = config(name, lease, renew, retry, request_timeout)
    copies = [Copy(cfg, f"{name}-{i}") for i in range(3)]
    t0 = time.monotonic()
    first = wait_leader(copies)
    first_s = time.monotonic() - t0
    crash, grace = [], []
    for kind, out in (("KILL", crash), ("TERM", grace)):
        for _ in range(TRIALS):
            leader = wait_leader(copies)
            time.sleep(retry_s(retry) * 2)
            t = time.monotonic()
            leader.stop(signal.SIGKILL if kind == "KILL" else signal.SIGTERM)
            new = wait_leader([c for c in copies if c is not leader])
            out.append(time.monotonic() - t)
            copies[copies.index(leader)] = Copy(cfg, leader.ident)
    for c in copies:
        c.stop()
    return first_s, crash, grace


def retry_s(v):
    return float(v[:-2]) / 1000 if v.endswith("ms") else float(v[:-1])


def footprint(seconds):
    cfg = config("idle", "15s", "10s", "2s")
    copies = [Copy(cfg, "idle-0"), Copy(cfg, "idle-1")]
    leader = wait_leader(copies)
    follower = [c for c in copies if c is not leader][0]
    time.sleep(2)
    t0, l0, f0 = time.monotonic(), leader.cpu_ticks(), follower.cpu_ticks()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    hz = os.sysconf("SC_CLK_TCK")
    res = {
        "leader_rss": leader.rss_kib(), "follower_rss": follower.rss_kib(),
        "leader_cpu": (leader.cpu_ticks() - l0) / hz / dt * 100,
        "follower_cpu": (follower.cpu_ticks() - f0) / hz / dt * 100, "seconds": seconds,
    }
    for c in copies:
        c.stop()
    return res


print("# Benchmarks\n")
print(f"Produced by `scripts/bench {TRIALS}` on {time.strftime('%Y-%m-%d')}: {platform.machine()}, "
      f"{os.cpu_count()} cores, Linux {platform.release()}; SeaweedFS 4.48 on loopback; release build; "
      f"3 copies; leadership read from each copy's `GET /leader/health`, polled every 10 ms.\n")
print(f"Seconds from the signal to a new leader, {TRIALS} trials each; lease/renew deadline/retry period.\n")
print("| timings | measure | min | median | p99 | max |")
print("|---|---|---|---|---|---|")
for label, lease, renew, retry, rt in (("fast 3s/1s/0.5s", "3s", "1s", "500ms", "800ms"),
                                      ("default 15s/10s/2s", "15s", "10s", "2s", "3s")):
    first, crash, grace = run_set(label, lease, renew, retry, rt)
    print(f"| {label} | crash failover (SIGKILL) | {stats(crash)} |")
    print(f"| {label} | graceful hand-over (SIGTERM) | {stats(grace)} |")
    print(f"| {label} | first leadership on a fresh key, from process start (incl. probe) | {first:.2f} | | | |")
fp = footprint(int(os.environ.get("BENCH_IDLE_SECONDS", "60")))
print(f"\nFootprint over {fp['seconds']} s idle at the default timings: leader RSS "
      f"{fp['leader_rss'] / 1024:.1f} MiB, CPU {fp['leader_cpu']:.2f} % of a core; follower RSS "
      f"{fp['follower_rss'] / 1024:.1f} MiB, CPU {fp['follower_cpu']:.2f} %.")
size = os.path.getsize(BIN)
print(f"\nRelease binary (stripped): {size / 1024 / 1024:.1f} MiB.")
