#!/usr/bin/env bash
# mkroot.sh - a Debian 12 (bookworm) root tree for the system test tiers,
# built once with debootstrap and cached.
#
#   tests/system/mkroot.sh TARGET [PACKAGE...]
#
# TARGET gets a minbase tree with systemd as init (systemd, systemd-sysv,
# dbus) plus each PACKAGE.  The tree is cached: TARGET/.mkroot-key holds the
# key it was built for (this script, the mirror, the sorted package list);
# when it matches, nothing is done (exit 0 at once).  Otherwise the tree is
# built in TARGET.new and renamed over TARGET, so an interrupted build never
# leaves a half tree behind a valid key.  Treat TARGET as read-only: copy it
# (cp -a, or systemd-nspawn --ephemeral) for each run.
#
# The mirror is MKROOT_MIRROR, else the host's own Debian mirror (the first
# "debian" URI in /etc/apt/sources.list*), else deb.debian.org.  Prints the
# tree's path on its last line.  Needs root and debootstrap.
set -euo pipefail

die() { echo "mkroot: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 TARGET [PACKAGE...]"
target=$(realpath -m "$1")
shift
[ "$(id -u)" = 0 ] || die "needs root (debootstrap)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/install-deps.sh)"

mirror=${MKROOT_MIRROR:-}
if [ -z "$mirror" ]; then
        # deb822 "URIs:" lines and one-line "deb URI suite" lines alike;
        # the security archive has a suite of its own, not ours.
        mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                     /etc/apt/sources.list.d/*.sources 2>/dev/null |
                 grep -oE '(https?)://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ') || true
fi
mirror=${mirror:-http://deb.debian.org/debian}

pkgs=(systemd systemd-sysv dbus "$@")
sorted=$(printf '%s\n' "${pkgs[@]}" | sort -u | paste -sd, -)
key="$(sha256sum "$0" | cut -d' ' -f1) $mirror $sorted"
if [ -f "$target/.mkroot-key" ] && [ "$(cat "$target/.mkroot-key")" = "$key" ]; then
        echo "$target"
        exit 0
fi

new="$target.new"
rm -rf "$new"
trap 'rm -rf "$new"' EXIT
mkdir -p "$(dirname "$target")"
echo "mkroot: debootstrap bookworm from $mirror into $new ($sorted)" >&2
if ! debootstrap --variant=minbase --include="$sorted" bookworm "$new" "$mirror" >"$new.log" 2>&1; then
        tail -n 20 "$new.log" >&2
        die "debootstrap failed (log: $new.log)"
fi
rm -f "$new.log"

# A machine of its own each boot: an empty machine-id is filled by systemd.
: >"$new/etc/machine-id"
echo edgecd-test >"$new/etc/hostname"
# Root may log in on the console (nspawn without --boot login is not used,
# but a locked root blocks nothing here either).
chroot "$new" passwd -d root >/dev/null 2>&1 || true
# Nothing inside needs these, and they slow each boot or fail in a container.
for u in systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
         e2scrub_all.timer fstrim.timer man-db.timer dpkg-db-backup.timer; do
        ln -sf /dev/null "$new/etc/systemd/system/$u"
done
apt_clean() { rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*; }
apt_clean "$new"

echo "$key" >"$new/.mkroot-key"
rm -rf "$target"
mv "$new" "$target"
trap - EXIT
echo "$target"
