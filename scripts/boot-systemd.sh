# The booted-systemd checks (sourced by `scripts/check-systemd --boot`, not
# run). Two Debian 12 containers boot under systemd-nspawn from one tree
# made by mmdebstrap (cached under .tools/, each container writes to its
# own tmpfs overlay), install the .deb, and run it against a SeaweedFS on
# the host's loopback (the containers share the host's network). Every
# assertion names what it saw when it fails. If nspawn cannot boot, the
# stage fails and says why: it never skips.
#
# The host has no systemd or dbus: nspawn runs with --register=no
# --keep-unit and a tmpfs on /run/systemd/nspawn. Commands run inside with
# nsenter on the container's init (the nspawn process's child).

BOOT_TREE_PACKAGES="systemd,systemd-sysv,dbus,procps,ca-certificates"
BOOT_SUITE=bookworm
BOOT_MIRROR=http://deb.debian.org/debian

# ensure_boot_tools: systemd-nspawn (systemd-container) and mmdebstrap.
ensure_boot_tools() {
  local sudo="" pkgs=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  command -v systemd-nspawn >/dev/null || pkgs="$pkgs systemd-container"
  command -v mmdebstrap >/dev/null || pkgs="$pkgs mmdebstrap"
  command -v nsenter >/dev/null || pkgs="$pkgs util-linux"
  [ -z "$pkgs" ] && return 0
  say "installing$pkgs (Debian), to boot systemd in containers"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs >/dev/null 2>&1 ||
    { $sudo apt-get update -q >/dev/null &&
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs >/dev/null; } ||
    die "cannot install$pkgs; install them (apt-get install$pkgs) and retry"
}

# ensure_boot_tree: the Debian 12 tree under .tools/, made once per package
# list; prints its path.
ensure_boot_tree() {
  local tree="$TOOLS/debian-12-systemd" stamp="$BOOT_SUITE $BOOT_TREE_PACKAGES"
  if [ ! -f "$tree/.s3e-stamp" ] || [ "$(cat "$tree/.s3e-stamp")" != "$stamp" ]; then
    say "making a Debian 12 tree with systemd (mmdebstrap, cached in .tools/debian-12-systemd)" >&2
    rm -rf "$tree.new" "$tree"
    mmdebstrap --quiet --variant=minbase --include="$BOOT_TREE_PACKAGES" \
      "$BOOT_SUITE" "$tree.new" "$BOOT_MIRROR" >&2 ||
      die "mmdebstrap could not make a Debian 12 tree from $BOOT_MIRROR"
    echo "$stamp" >"$tree.new/.s3e-stamp"
    mv "$tree.new" "$tree"
  fi
  printf '%s\n' "$tree"
}

declare -A NSPAWN_PID INIT_PID

# boot NAME: boot a container; sets NSPAWN_PID[NAME] and INIT_PID[NAME].
boot() {
  local name=$1 i init=""
  systemd-nspawn --quiet -D "$BOOT_TREE" --boot --register=no --keep-unit \
    --volatile=overlay --machine="$name" --hostname=s3e-boot \
    --bind-ro="$BOOT_PKG_DIR:/mnt/pkg" --console=pipe \
    </dev/null >"$BOOT_WORK/$name.console" 2>&1 &
  NSPAWN_PID[$name]=$!
  for i in $(seq 1 100); do
    init=$(pgrep -P "${NSPAWN_PID[$name]}" | head -1 || true)
    [ -n "$init" ] && break
    kill -0 "${NSPAWN_PID[$name]}" 2>/dev/null ||
      die "systemd-nspawn could not boot $name: $(tail -5 "$BOOT_WORK/$name.console")"
    sleep 0.1
  done
  [ -n "$init" ] || die "systemd-nspawn started no init for $name in 10 s: $(tail -5 "$BOOT_WORK/$name.console")"
  INIT_PID[$name]=$init
  local state=""
  for i in $(seq 1 300); do
    state=$(in_c "$name" systemctl is-system-running 2>/dev/null || true)
    case $state in running|degraded) break ;; esac
    sleep 0.1
  done
  case $state in
    running|degraded) ;;
    *) die "$name did not finish booting in 30 s (state: ${state:-none}): $(tail -5 "$BOOT_WORK/$name.console")" ;;
  esac
}

# in_c NAME CMD...: run a command inside a container.
in_c() {
  local name=$1
  shift
  nsenter -t "${INIT_PID[$name]}" -m -u -i -p -- "$@"
}

boot_cleanup() {
  local name
  for name in "${!INIT_PID[@]}"; do
    kill -KILL "${INIT_PID[$name]}" 2>/dev/null || true
  done
  for name in "${!NSPAWN_PID[@]}"; do
    kill -KILL "${NSPAWN_PID[$name]}" 2>/dev/null || true
    wait "${NSPAWN_PID[$name]}" 2>/dev/null || true
  done
  [ -n "${WEED_PID:-}" ] && { kill -CONT "$WEED_PID" 2>/dev/null; kill "$WEED_PID" 2>/dev/null; wait "$WEED_PID" 2>/dev/null; } || true
  rm -rf "$BOOT_WORK"
}

fail() { die "check-systemd --boot: $*"; }

# until_true SECONDS WHAT CMD...: retry CMD every 0.1 s for SECONDS.
until_true() {
  local secs=$1 what=$2 i
  shift 2
  for i in $(seq 1 $((secs * 10))); do
    "$@" && return 0
    sleep 0.1
  done
  fail "$what: not within $secs s"
}

# The daemon's settings in container NAME for election ELECTION on PORT.
write_config() { # NAME FILE ELECTION PORT
  in_c "$1" sh -c "cat >'$2'" <<YAML
election: $3
identity: $1
s3:
  bucket: boot
  endpoint_url: $S3_ENDPOINT
  force_path_style: true
  region: us-east-1
  connect_timeout: 500ms
  request_timeout: 1s
timing:
  lease_duration: 4s
  renew_deadline: 3s
  retry_period: 1s
  step_down_cooloff: 2s
http:
  listen: 127.0.0.1:$4
YAML
  in_c "$1" chgrp s3-elector "$2"
}

leads() { in_c "$1" s3-elector is-leader --config /etc/s3-elector/s3-elector.yaml >/dev/null 2>&1; }
main_pid() { in_c "$1" systemctl show -P MainPID s3-elector.service; }
restarts() { in_c "$1" systemctl show -P NRestarts s3-elector.service; }
active() { [ "$(in_c "$1" systemctl is-active "${2:-s3-elector.service}" 2>/dev/null)" = active ]; }

# The one leader of c1 and c2 (fails on none or two).
the_leader() {
  local l=""
  leads c1 && l=c1
  if leads c2; then
    [ -z "$l" ] || fail "two copies lead (c1 and c2)"
    l=c2
  fi
  printf '%s' "$l"
}
follows() { ! leads "$1"; }
one_leader() { [ -n "$(the_leader)" ]; }
other() { [ "$1" = c1 ] && echo c2 || echo c1; }

# The journal's microsecond timestamp of the last line of s3-elector.service
# in NAME whose message has event="EVENT".
event_usec() { # NAME EVENT
  in_c "$1" journalctl -u s3-elector.service -o json --output-fields=MESSAGE,__REALTIME_TIMESTAMP |
    python3 -c '
import json, sys
want = "event=\"%s\"" % sys.argv[1]
last = ""
for line in sys.stdin:
    e = json.loads(line)
    if want in str(e.get("MESSAGE", "")):
        last = e["__REALTIME_TIMESTAMP"]
print(last)' "$2"
}

boot_checks() {
  local deb=${1:-}
  local version
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
  if [ -z "$deb" ]; then
    deb="$ROOT/target/check-dist/s3-elector_${version}_amd64.deb"
    [ -f "$deb" ] || scripts/package --binary "$ROOT/target/debug/s3-elector" --out "$ROOT/target/check-dist"
  fi
  [ -f "$deb" ] || fail "no package at $deb"
  [ "$(id -u)" -eq 0 ] || fail "booting containers needs root (run it under sudo)"
  ensure_boot_tools
  ensure_seaweedfs
  command -v curl >/dev/null || fail "curl not found; it is needed to create the bucket"
  BOOT_TREE=$(ensure_boot_tree)
  BOOT_WORK=$(mktemp -d)
  BOOT_PKG_DIR="$BOOT_WORK/pkg"
  mkdir -p "$BOOT_PKG_DIR"
  cp "$deb" "$BOOT_PKG_DIR/s3-elector.deb"
  trap boot_cleanup EXIT
  mkdir -p /run/systemd/nspawn
  mountpoint -q /run/systemd/nspawn || mount -t tmpfs tmpfs /run/systemd/nspawn ||
    fail "cannot mount a tmpfs on /run/systemd/nspawn (nspawn needs it without a host systemd)"
  start_seaweedfs "$BOOT_WORK/weed"
  create_bucket boot

  say "boot two Debian 12 containers (systemd-nspawn)"
  local c
  for c in c1 c2; do boot "$c"; done
  echo "ok: both booted ($(in_c c1 systemctl --version | head -1))"

  say "install the .deb in both, start s3-elector.service"
  # The containers share the host's network: a port of its own for each.
  local port
  port=$(pick_base_port)
  declare -gA PORT=([c1]=$port [c2]=$((port + 1)) [a]=$((port + 2)) [b]=$((port + 3)))
  for c in c1 c2; do
    in_c "$c" dpkg -i /mnt/pkg/s3-elector.deb >/dev/null || fail "dpkg -i failed in $c"
    write_config "$c" /etc/s3-elector/s3-elector.yaml boot "${PORT[$c]}"
    in_c "$c" sh -c 'cat >/etc/default/s3-elector' <<'ENV'
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=testtest
AWS_EC2_METADATA_DISABLED=true
ENV
    # A supervised program, and a watchdog above the 4 s lease.
    in_c "$c" mkdir -p /etc/systemd/system/s3-elector.service.d
    in_c "$c" sh -c 'cat >/etc/systemd/system/s3-elector.service.d/boot.conf' <<'UNIT'
[Service]
ExecStart=
ExecStart=/usr/bin/s3-elector run --config /etc/s3-elector/s3-elector.yaml -- /bin/sleep 3600
WatchdogSec=8s
UNIT
    in_c "$c" systemctl daemon-reload
  done
  in_c c1 systemctl start s3-elector.service || fail "systemctl start failed in c1: $(in_c c1 journalctl -u s3-elector -n 20 --no-pager)"
  until_true 20 "c1 leads" leads c1
  in_c c2 systemctl start s3-elector.service || fail "systemctl start failed in c2"
  for c in c1 c2; do
    active "$c" || fail "s3-elector is not active in $c (notify readiness)"
    local text
    text=$(in_c "$c" systemctl show -P StatusText s3-elector.service)
    case $c:$text in
      "c1:leader, term "*|"c2:following c1, term "*) ;;
      *) fail "StatusText in $c is '$text'" ;;
    esac
    echo "ok: $c active over sd_notify, StatusText: $text"
  done
  until_true 10 "c2 follows" follows c2
  [ "$(the_leader)" = c1 ] || fail "expected c1 to lead"
  echo "ok: exactly one leader (c1)"

  say "kill -9 of the leader's main pid: a leader again, and systemd restarts it"
  local l f pid n0
  l=$(the_leader)
  pid=$(main_pid "$l")
  n0=$(restarts "$l")
  in_c "$l" kill -KILL "$pid"
  until_true 30 "a leader after kill -9 of $l" one_leader
  until_true 30 "systemd restarts $l" restarted "$l" "$n0" "$pid"
  echo "ok: $(the_leader) leads; $l restarted (NRestarts $n0 -> $(restarts "$l"), main pid $pid -> $(main_pid "$l"))"
  until_true 20 "$l runs after its restart" active "$l"

  say "systemctl stop of the leader: a hand-over"
  l=$(the_leader)
  f=$(other "$l")
  in_c "$l" systemctl stop s3-elector.service
  until_true 10 "$f leads after $l stopped" leads "$f"
  [ "$(acquired_reason "$f")" = released ] || fail "$f acquired with reason $(acquired_reason "$f"), not released"
  echo "ok: $f leads (reason released)"
  in_c "$l" systemctl start s3-elector.service
  until_true 10 "$l follows" follows "$l"

  say "SIGSTOP of the leading daemon: its program stops by the deadline, the watchdog restarts it"
  l=$(the_leader)
  f=$(other "$l")
  until_true 10 "the program runs on $l" program_runs "$l"
  pid=$(main_pid "$l")
  n0=$(restarts "$l")
  in_c "$l" kill -STOP "$pid"
  local t0=$SECONDS overlap=0
  # Until the other copy leads, and after: the frozen leader's program must
  # be gone before anyone else leads.
  for _ in $(seq 1 300); do
    if leads "$f"; then
      program_runs "$l" && overlap=1
      break
    fi
    sleep 0.1
  done
  leads "$f" || fail "$f did not take over from a frozen $l in 30 s"
  [ "$overlap" = 0 ] || fail "the program of the frozen $l still ran when $f led"
  echo "ok: the program on $l was gone before $f led ($((SECONDS - t0)) s after SIGSTOP)"
  until_true 40 "the watchdog restarts the frozen daemon on $l" restarted "$l" "$n0" "$pid"
  in_c "$l" journalctl -u s3-elector.service --no-pager | grep 'Watchdog timeout' >/dev/null ||
    fail "no watchdog timeout in $l's journal"
  echo "ok: the watchdog restarted $l (NRestarts $n0 -> $(restarts "$l"))"
  until_true 20 "$l follows after its restart" follows "$l"

  say "the timer example runs on the leader only"
  l=$(the_leader)
  for c in c1 c2; do
    in_c "$c" sh -c 'cp /usr/share/doc/s3-elector/examples/nightly-report.service /usr/share/doc/s3-elector/examples/nightly-report.timer /etc/systemd/system/ &&
      printf "#!/bin/sh\necho nightly-report ran \$*\n" >/usr/local/bin/nightly-report && chmod 0755 /usr/local/bin/nightly-report &&
      systemctl daemon-reload'
    in_c "$c" systemctl start nightly-report.service || fail "nightly-report.service failed in $c"
  done
  local term
  term=$(in_c "$l" s3-elector is-leader --json --config /etc/s3-elector/s3-elector.yaml | sed -n 's/.*"term":\([0-9]*\).*/\1/p')
  in_c "$l" journalctl -u nightly-report.service --no-pager | grep "nightly-report ran --fencing-term $term\$" >/dev/null ||
    fail "the job did not run on the leader $l with term $term: $(in_c "$l" journalctl -u nightly-report.service --no-pager | tail -5)"
  in_c "$(other "$l")" journalctl -u nightly-report.service --no-pager | grep "nightly-report ran" >/dev/null &&
    fail "the job ran on the follower $(other "$l")"
  echo "ok: ran on $l with --fencing-term $term, skipped on $(other "$l")"

  say "dpkg -i of the package again while it leads: a graceful hand-over, and it runs again"
  l=$(the_leader)
  f=$(other "$l")
  pid=$(main_pid "$l")
  in_c "$l" dpkg -i /mnt/pkg/s3-elector.deb >/dev/null || fail "dpkg -i again failed in $l"
  until_true 10 "$f leads after the upgrade of $l" leads "$f"
  until_true 20 "$l runs again after the upgrade" active "$l"
  [ "$(main_pid "$l")" != "$pid" ] || fail "the upgrade did not restart $l"
  local lost acq gap
  lost=$(event_usec "$l" lost)
  acq=$(event_usec "$f" acquired)
  [ -n "$lost" ] && [ -n "$acq" ] || fail "no lost ($lost) or acquired ($acq) line in the journals"
  gap=$(( (acq - lost) / 1000 ))
  [ "$(acquired_reason "$f")" = released ] || fail "$f acquired with reason $(acquired_reason "$f"), not released"
  [ "$gap" -le 100 ] || fail "leaderless for $gap ms during the upgrade of $l (at most 100)"
  echo "ok: $f led $gap ms after $l stopped leading (released); $l runs again"
  until_true 10 "$l follows" follows "$l"

  say "the template unit: two elections in one container"
  for c in a b; do
    write_config c1 "/etc/s3-elector/$c.yaml" "boot-$c" "${PORT[$c]}"
    in_c c1 cp /etc/default/s3-elector "/etc/default/s3-elector-$c"
  done
  in_c c1 systemctl start s3-elector@a.service s3-elector@b.service ||
    fail "s3-elector@a/b did not start: $(in_c c1 journalctl -u 's3-elector@*' -n 20 --no-pager)"
  for c in a b; do
    until_true 20 "s3-elector@$c leads its election" \
      in_c c1 sh -c "s3-elector is-leader --config /etc/s3-elector/$c.yaml >/dev/null"
    in_c c1 grep -q "\"election\": *\"boot-$c\"" "/run/s3-elector-$c/status.json" ||
      fail "/run/s3-elector-$c/status.json does not name boot-$c"
  done
  in_c c1 systemctl stop s3-elector.service
  for c in a b; do
    active c1 "s3-elector@$c.service" || fail "stopping s3-elector.service stopped s3-elector@$c"
    in_c c1 test -f "/run/s3-elector-$c/status.json" ||
      fail "stopping s3-elector.service removed /run/s3-elector-$c"
  done
  in_c c1 sh -c 'cp "/usr/share/doc/s3-elector/examples/nightly-report@.service" "/usr/share/doc/s3-elector/examples/nightly-report@.timer" /etc/systemd/system/ && systemctl daemon-reload'
  in_c c1 systemctl start nightly-report@a.service || fail "nightly-report@a.service failed"
  in_c c1 journalctl -u nightly-report@a.service --no-pager | grep "nightly-report ran --fencing-term" >/dev/null ||
    fail "nightly-report@a did not run on the leader of boot-a"
  in_c c1 systemctl start s3-elector.service
  echo "ok: s3-elector@a and @b lead boot-a and boot-b with their own status files; stopping the plain unit left them alone; nightly-report@a ran"

  say "a frozen store: journalctl -p warning shows it"
  kill -STOP "$WEED_PID"
  until_true 30 "a store_unreachable warning in c2's journal" \
    sh -c "nsenter -t ${INIT_PID[c2]} -m -u -i -p -- journalctl -u s3-elector.service -p warning --no-pager | grep 'event=\"store_unreachable\"' >/dev/null"
  kill -CONT "$WEED_PID"
  until_true 30 "store_reachable in c2's journal" \
    sh -c "nsenter -t ${INIT_PID[c2]} -m -u -i -p -- journalctl -u s3-elector.service --no-pager | grep 'event=\"store_reachable\"' >/dev/null"
  in_c c2 journalctl -u s3-elector.service -p warning --no-pager | grep 'event="store_reachable"' >/dev/null &&
    fail "store_reachable is logged at warning priority"
  in_c c2 journalctl -u s3-elector.service -p info --no-pager | grep 'event="observed' >/dev/null ||
    fail "c2's INFO lines are not in the journal at priority info"
  in_c c2 journalctl -u s3-elector.service -p notice --no-pager | grep 'event="observed' >/dev/null &&
    fail "c2's INFO lines are in the journal above priority info"
  in_c c2 journalctl -u s3-elector.service -o cat --no-pager | grep '^<[0-9]>' >/dev/null &&
    fail "the priority prefix reached the journal's messages"
  in_c c2 journalctl -u s3-elector.service -o cat --no-pager | grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T|s3_elector::' >/dev/null &&
    fail "journal lines carry the daemon's own timestamp or a module path: $(in_c c2 journalctl -u s3-elector.service -o cat -n 3 --no-pager)"
  # Native journal fields: EVENT, TERM, ELECTION... on each entry.
  local native
  native=$(in_c c2 journalctl -u s3-elector.service EVENT=acquired ELECTION=boot -o json --no-pager | tail -1)
  python3 -c '
import json, sys
e = json.loads(sys.argv[1])
assert e.get("TERM", "").isdigit() and e.get("REASON") and e.get("SYSLOG_IDENTIFIER") == "s3-elector", e
' "$native" || fail "journalctl EVENT=acquired ELECTION=boot found no entry with TERM and REASON: $native"
  [ "$(in_c c2 journalctl -u s3-elector.service EVENT=store_unreachable -o json --no-pager | tail -1 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["PRIORITY"])')" = 4 ] ||
    fail "store_unreachable's entry is not PRIORITY=4"
  echo "ok: WARN store_unreachable at priority warning, INFO store_reachable once it answered; no timestamps or module paths; native fields (journalctl EVENT=acquired ELECTION=boot)"
  until_true 20 "one leader after the freeze" one_leader

  say "purge"
  in_c c2 dpkg --purge s3-elector >/dev/null || fail "dpkg --purge failed in c2"
  for p in /usr/bin/s3-elector /usr/lib/systemd/system/s3-elector.service /etc/s3-elector /var/lib/s3-elector /run/s3-elector; do
    in_c c2 test ! -e "$p" || fail "$p is left after dpkg --purge in c2"
  done
  in_c c2 getent passwd s3-elector >/dev/null || fail "dpkg --purge deleted the s3-elector user"
  until_true 20 "c1 leads after c2 was purged" leads c1
  echo "ok: purged from c2 (the system user stays); c1 leads"
}

restarted() { # NAME RESTARTS-BEFORE PID-BEFORE
  [ "$(restarts "$1")" -gt "$2" ] && [ "$(main_pid "$1")" != "$3" ] && [ "$(main_pid "$1")" != 0 ]
}
program_runs() { in_c "$1" pgrep -x sleep >/dev/null; }

# The reason of the last `acquired` line of NAME's daemon.
acquired_reason() {
  in_c "$1" journalctl -u s3-elector.service -o cat --no-pager | grep 'event="acquired"' | tail -1 |
    sed -n 's/.* reason="\{0,1\}\([a-z_]*\).*/\1/p'
}
