"""Health benchmarks (issue 32), run through scripts/bench-health: three
copies on a local SeaweedFS, each with a health check that fails while a
file named after it exists and says so on its stdout (the daemon logs the
line, so the first failing check has a timestamp).

Figures, at `interval` 200 ms, `rise` 2, `fall` 2, `hold_down` 1 s,
lease 3 s / renew 2 s / retry 0.5 s, `step_down_cooloff` 1 s:
- hand-over: the leader's check starts failing; from the first failing
  check to the next leader's `acquired`, and the leaderless gap (the old
  leader's `lost` to the new one's `acquired`);
- flapping: every copy's check flips at random every interval for a
  minute; leadership changes against the hold-downs in that time;
- none healthy: every check fails for 30 s; releases and acquisitions;
- crash in a shared outage: every check fails, the leader is killed; to
  the next `acquired`, against lease + 8 rank delays + retry.
Prints Markdown on stdout.
"""
import json, os, random, signal, statistics, subprocess, sys, time, urllib.request

sys.argv = [sys.argv[0], sys.argv[1], sys.argv[2]]
import bench  # noqa: E402  (the helpers: Copy, config, wait_leader, ...)
from bench import Copy, WORK, pct, log  # noqa: E402

TRIALS = int(sys.argv[2])
INTERVAL, FALL, RISE, HOLD = 0.2, 2, 2, 1.0
LEASE, RENEW, RETRY = "3s", "2s", "500ms"
RANK = min(max(0.5 / 10, 0.02), 0.25)


def cfg(name, extra=""):
    path = bench.config(name, LEASE, RENEW, RETRY)
    # A short cool-off: the copy that handed over is a candidate again soon.
    text = open(path).read().replace("timing:\n", "timing:\n  step_down_cooloff: 1s\n", 1)
    open(path, "w").write(text)
    with open(path, "a") as f:
        f.write(f"health:\n  command: [sh, -c, 'if [ -e {WORK}/sick-$S3_ELECTOR_IDENTITY ]; then echo failing; exit 1; fi']\n"
                f"  interval: {int(INTERVAL * 1000)}ms\n  rise: {RISE}\n  fall: {FALL}\n  hold_down: {HOLD}s\n{extra}")
    return path


def sick(ident, yes):
    p = f"{WORK}/sick-{ident}"
    if yes:
        open(p, "w").close()
    elif os.path.exists(p):
        os.remove(p)


def events(c):
    out = []
    with open(c.logpath, "rb") as f:
        for raw in f:
            try:
                out.append(json.loads(raw))
            except ValueError:
                pass
    return out


def first(c, t, pred):
    for j in events(c):
        ts = bench.ts_of(j) if j.get("timestamp") else 0
        if ts >= t and pred(j):
            return ts
    return None


def view(c):
    try:
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{c.port}/leader", timeout=1))
    except Exception:
        return {}


def until(what, f, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if f():
            return
        time.sleep(0.02)
    raise SystemExit(f"timed out: {what}")


def verdict(c):
    return (view(c).get("health") or {}).get("verdict")


def leaderships(copies):
    """(from, to, ident) of every leadership, from acquired/lost events."""
    out = []
    for c in copies:
        start = None
        for j in events(c):
            ts = bench.ts_of(j) if j.get("timestamp") else None
            if j.get("event") == "acquired":
                start = ts
            elif j.get("event") == "lost" and start is not None:
                out.append((start, ts, c.ident))
                start = None
        if start is not None:
            out.append((start, None, c.ident))
    return sorted(out, key=lambda x: x[0])


def overlaps(ls):
    n = 0
    for a, b in zip(ls, ls[1:]):
        if a[1] is None or a[1] > b[0]:
            n += 1
    return n


def handover(copies):
    detect, gaps = [], []
    for i in range(TRIALS):
        leader = bench.wait_leader(copies)
        until("successors named", lambda: len(leader.successors) == 2 or leader.scan() or False, 30)
        time.sleep(random.uniform(0.0, 0.5))
        t0 = time.time()
        sick(leader.ident, True)
        nxt, _ = bench.wait_acquired([c for c in copies if c is not leader], t0, 30)
        t1 = nxt.acquired_after(t0)
        failing = first(leader, t0, lambda j: j.get("source") == "health" and "failing" in str(j.get("message", "")))
        lost = first(leader, t0, lambda j: j.get("event") == "lost")
        detect.append(t1 - (failing or t0))
        gaps.append(t1 - (lost or t1))
        sick(leader.ident, False)
        until("old leader healthy again", lambda: verdict(leader) == "healthy")
        bench.wait_candidates(copies)
        log(f"hand-over {i + 1}/{TRIALS}: {detect[-1] * 1000:.0f} ms, gap {gaps[-1] * 1000:.1f} ms")
    return detect, gaps


def flapping(copies, seconds=60):
    t0 = time.time()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for c in copies:
            sick(c.ident, random.random() < 0.5)
        time.sleep(INTERVAL)
    for c in copies:
        sick(c.ident, False)
    ls = [l for l in leaderships(copies) if l[0] >= t0 and l[0] <= t0 + seconds]
    return len(ls), overlaps(leaderships(copies))


def none_healthy(copies, seconds=30):
    for c in copies:
        sick(c.ident, True)
    until("every verdict unhealthy", lambda: all(verdict(c) == "unhealthy" for c in copies))
    time.sleep(2)
    t0 = time.time()
    time.sleep(seconds)
    moves = sum(1 for c in copies if c.acquired_after(t0))
    releases = sum(1 for c in copies for r in c.released if r >= t0)
    leads = sum(1 for c in copies if c.leads())
    return moves, releases, leads


def crash_in_outage(copies, cfgpath, n):
    took = []
    for i in range(n):
        for c in copies:
            sick(c.ident, True)
        until("every verdict unhealthy", lambda: all(verdict(c) == "unhealthy" for c in copies if c.alive()))
        leader = bench.wait_leader(copies)
        time.sleep(random.uniform(0.0, 0.5))
        t0 = time.time()
        leader.stop(signal.SIGKILL)
        _, dt = bench.wait_acquired([c for c in copies if c is not leader], t0, 60)
        took.append(dt)
        idx = copies.index(leader)
        copies[idx] = Copy(cfgpath, leader.ident)
        log(f"crash in outage {i + 1}/{n}: {dt:.2f} s")
    for c in copies:
        sick(c.ident, False)
    return took


def main():
    path = cfg("health")
    copies = [Copy(path, f"h{i}") for i in range(3)]
    try:
        bench.wait_leader(copies)
        until("every copy healthy", lambda: all(verdict(c) == "healthy" for c in copies))
        detect, gaps = handover(copies)
        flips, overlap = flapping(copies)
        moves, releases, leads = none_healthy(copies)
        crash = crash_in_outage(copies, path, max(10, TRIALS // 4))
        overlap += overlaps(leaderships(copies))
    finally:
        for c in copies:
            c.stop(signal.SIGKILL)
    bound = FALL * INTERVAL + 0.1
    crash_bound = 3.0 + 8 * RANK + 0.5
    ms = lambda xs, q: f"{pct(xs, q) * 1000:.1f}"
    P = print
    P(f"## Health (issue 32; `scripts/bench-health {TRIALS}`, {time.strftime('%Y-%m-%d')})\n")
    P(f"Three copies on a local SeaweedFS, lease {LEASE} / renew {RENEW} / retry {RETRY}, "
      f"`health.interval` {int(INTERVAL * 1000)} ms, `rise` {RISE}, `fall` {FALL}, `hold_down` {HOLD:g} s; "
      "each check fails while a file named after its copy exists. Times from the daemons' own JSON log "
      "timestamps (microseconds, one host clock).\n")
    P("| figure | trials | median | p99 | max | target |")
    P("|---|---|---|---|---|---|")
    P(f"| unhealthy leader: first failing check → next leader's `acquired` (ms) | {len(detect)} | "
      f"{statistics.median(detect) * 1000:.0f} | {ms(detect, 0.99)} | {max(detect) * 1000:.0f} | "
      f"≤ fall × interval + 100 ms = {bound * 1000:.0f} ms: {'met' if max(detect) <= bound else 'NOT met'} |")
    P(f"| its leaderless gap: old leader's `lost` → new leader's `acquired` (ms) | {len(gaps)} | "
      f"{statistics.median(gaps) * 1000:.1f} | {ms(gaps, 0.99)} | {max(gaps) * 1000:.1f} | "
      f"p99 ≤ 20 ms: {'met' if pct(gaps, 0.99) <= 0.02 else 'NOT met'} |")
    P(f"| crash of the leader while every copy is unhealthy → next `acquired` (s) | {len(crash)} | "
      f"{statistics.median(crash):.2f} | {pct(crash, 0.99):.2f} | {max(crash):.2f} | "
      f"≤ lease + 8 rank delays + retry = {crash_bound:.2f} s (+ the kill's phase in the renewal): "
      f"{'met' if max(crash) <= crash_bound + 0.5 else 'NOT met'} |")
    P("")
    P(f"- Flapping: every copy's check result drawn at random every interval for 60 s: {flips} leaderships began "
      f"(at most one per hold-down would be {int(60 / HOLD)}); overlapping leaderships over the whole run: {overlap}.")
    P(f"- Nobody healthy for 30 s: {moves} acquisitions, {releases} releases, {leads} copy leading at the end "
      "(target: the leader stays, no release storm).")


if __name__ == "__main__":
    main()
