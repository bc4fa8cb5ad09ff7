#!/bin/sh
# Install every Debian 12 package edgecd needs to build, test and run.
# Idempotent.  With --if-missing it does nothing when all is present, so the
# Makefile can call it on every build; installing needs root.
set -eu

PACKAGES="build-essential pkg-config make git curl ca-certificates
libmicrohttpd-dev libjansson-dev libyaml-dev libseccomp-dev libcgroup-dev
libsystemd-dev uuid-dev nettle-dev libyajl-dev check musl-tools busybox-static runc crun
python3 python3-jsonschema golang-github-opencontainers-specs-dev iproute2 procps
valgrind slowhttptest libsqlite3-dev sqlite3 wrk nginx umoci prometheus
debhelper dpkg-dev lintian
libopenblas-serial-dev python3-numpy libcurl4-openssl-dev libjson-validator-perl
qemu-system-x86 debootstrap e2fsprogs kmod cpio systemd-container"

missing() {
        out=""
        for p in $PACKAGES; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
                        || out="$out $p"
        done
        echo "$out"
}

need=$(missing)
was_missing=$need
if [ "${1:-}" = "--if-missing" ] && [ -z "$need" ]; then
        exit 0
fi
[ -n "$need" ] || need="$PACKAGES"

if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages:$need" >&2
        echo "install-deps: run as root: sudo $0" >&2
        exit 1
fi
echo "install-deps: installing:$need" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $need >/dev/null
# make bench starts nginx itself (its own config, a free port): the
# package's service, started by the install where services start, is not
# wanted, so one that this run installed is stopped and disabled.
# Likewise prometheus: the tests need only its promtool, not a server on
# port 9090.
for svc in nginx prometheus; do
        case " $was_missing " in
        *" $svc "*)
                if command -v systemctl >/dev/null 2>&1; then
                        systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
                fi;;
        esac
done
echo "install-deps: done" >&2
