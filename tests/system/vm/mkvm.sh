#!/usr/bin/env bash
# mkvm.sh - the cgroup v2 test VM's kernel, initramfs and root image, built
# once and cached under a directory (make check-v2: build/vm/).
#
#   tests/system/vm/mkvm.sh CACHE_DIR
#
# Prints three lines, KERNEL=..., INITRD=..., IMAGE=..., the paths to boot.
#   - kernel: Debian's own linux-image-amd64 (the package it depends on),
#     fetched with apt-get download and unpacked with dpkg-deb -x into
#     CACHE_DIR/kernel/; the key is that package's name and version.  Or,
#     with EDGECD_VM_KERNEL_DEB set, that kernel package (a path, or an
#     address curl fetches once into CACHE_DIR/debs/; a relative path is
#     the repository's), e.g. a newer Debian kernel from trixie-backports;
#     the key is that file's sha256.
#   - initramfs: busybox-static and the virtio and ext4 modules (with what
#     modules.dep says they need), an /init that mounts /dev/vda and
#     switch_roots into it; built beside the kernel.
#   - image: a Debian 12 tree (tests/system/mkroot.sh: systemd, runc, crun,
#     python3 and the daemon's libraries) plus the boot unit of this
#     directory (edgecd-vmtest.service, edgecd-vmtest), made into an ext4
#     image with mkfs.ext4 -d (no loop device); keyed by the tree's key and
#     the files added.  Boot it with snapshot=on: it is never written.
# Needs root (debootstrap), apt lists (apt-get update) the first time.
set -euo pipefail

die() { echo "mkvm: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: $0 CACHE_DIR"
here=$(cd "$(dirname "$0")" && pwd)
cache=$(realpath -m "$1")
mkdir -p "$cache"
for t in debootstrap mkfs.ext4 depmod cpio busybox dpkg-deb xz; do
        command -v "$t" >/dev/null || die "$t is not installed (scripts/install-deps.sh)"
done

# --- kernel -----------------------------------------------------------------
kdir=$cache/kernel
kernel_pkg() {
        apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
kdeb=${EDGECD_VM_KERNEL_DEB:-}
kpkg=
if [ -n "$kdeb" ]; then
        case $kdeb in
        http://*|https://*)
                command -v curl >/dev/null || die "curl is not installed (scripts/install-deps.sh)"
                mkdir -p "$cache/debs"
                local_deb=$cache/debs/$(basename "$kdeb")
                if [ ! -f "$local_deb" ]; then
                        curl -fsSL -o "$local_deb.part" "$kdeb" || die "cannot fetch $kdeb"
                        mv "$local_deb.part" "$local_deb"
                fi
                kdeb=$local_deb ;;
        esac
        [ -f "$kdeb" ] || die "EDGECD_VM_KERNEL_DEB: no file $kdeb"
        kpkg=$(basename "$kdeb")
        kver_pkg="(EDGECD_VM_KERNEL_DEB)"
        kkey="deb:$(sha256sum "$kdeb" | cut -d' ' -f1) $(sha256sum "$0" | cut -d' ' -f1)"
else
        kpkg=$(kernel_pkg) || true
        if [ -z "$kpkg" ] && [ ! -f "$kdir/.key" ]; then
                # A machine whose apt lists were never fetched.
                apt-get update -qq >&2 || true
                kpkg=$(kernel_pkg) || true
        fi
        if [ -n "$kpkg" ]; then
                kver_pkg=$(apt-cache policy "$kpkg" | awk '/Candidate:/ { print $2 }')
                kkey="$kpkg $kver_pkg $(sha256sum "$0" | cut -d' ' -f1)"
        elif [ -f "$kdir/.key" ] && [ "$(cut -c1-4 "$kdir/.key")" != "deb:" ]; then
                kkey=$(cat "$kdir/.key")       # no apt lists: keep what is cached (Debian 12's)
        else
                die "cannot find linux-image-amd64's kernel package (run apt-get update)"
        fi
fi
if [ ! -f "$kdir/.key" ] || [ "$(cat "$kdir/.key")" != "$kkey" ]; then
        echo "mkvm: kernel $kpkg $kver_pkg" >&2
        rm -rf "$kdir.new"
        mkdir -p "$kdir.new/dl"
        if [ -n "$kdeb" ]; then
                cp "$kdeb" "$kdir.new/dl/kernel.deb"
        else
                (cd "$kdir.new/dl" && apt-get download "$kpkg" >/dev/null 2>&1) ||
                        die "apt-get download $kpkg failed"
        fi
        dpkg-deb -x "$kdir.new"/dl/*.deb "$kdir.new/x"
        rm -rf "$kdir.new/dl"
        # Newer packages put the modules under /usr (merged /usr).
        [ -d "$kdir.new/x/lib/modules" ] || ln -s usr/lib "$kdir.new/x/lib"
        kver=$(ls "$kdir.new/x/lib/modules/")
        depmod -b "$kdir.new/x" "$kver"
        cp "$kdir.new/x/boot/vmlinuz-$kver" "$kdir.new/vmlinuz"
        mods=$kdir.new/x/lib/modules/$kver

        # The initramfs: busybox, the modules in load order, /init.
        ir=$kdir.new/ir
        mkdir -p "$ir"/{bin,dev,proc,sys,newroot,lib/modules}
        cp "$(command -v busybox)" "$ir/bin/busybox"
        file "$ir/bin/busybox" 2>/dev/null | grep -q 'dynamically' && die "busybox is not static (busybox-static)"
        : >"$ir/modules"
        add_mod() {     # name: its dependencies first (modules.dep lists them nearest last)
                local line path deps d
                line=$(grep -E "/$1\.ko(\.xz)?:" "$mods/modules.dep" | head -n 1) || die "module $1 not in $kver"
                path=${line%%:*}
                deps=${line#*:}
                for d in $(echo $deps | tr ' ' '\n' | tac); do
                        grep -qx "$d" "$ir/modules" || { echo "$d" >>"$ir/modules"; }
                done
                grep -qx "$path" "$ir/modules" || echo "$path" >>"$ir/modules"
        }
        for m in virtio_pci virtio_blk crc32c_generic crc32c-intel ext4; do
                # Not a module: built in, or gone (crc32c became a
                # library in 6.14).  Anything else missing is an error.
                if ! grep -qE "/$m\.ko(\.xz)?:" "$mods/modules.dep"; then
                        case $m in crc32c*) continue ;; esac
                        grep -qE "/$m\.ko(\.xz)?\$" "$mods/modules.builtin" && continue
                fi
                add_mod "$m"
        done
        # busybox insmod takes plain modules: xz ones are unpacked.
        while read -r p; do
                mkdir -p "$ir/lib/modules/$(dirname "$p")"
                case $p in
                *.xz) xz -dc "$mods/$p" >"$ir/lib/modules/${p%.xz}" ;;
                *) cp "$mods/$p" "$ir/lib/modules/$p" ;;
                esac
        done <"$ir/modules"
        sed -i 's/\.xz$//' "$ir/modules"
        cat >"$ir/init" <<'EOF'
#!/bin/busybox sh
# The test VM's init: load virtio and ext4, mount /dev/vda, hand over.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r m; do
        insmod "/lib/modules/$m" 2>/dev/null || echo "initramfs: insmod $m failed"
done </modules
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if ! mount -t ext4 -o rw /dev/vda /newroot; then
        echo "initramfs: cannot mount /dev/vda"
        poweroff -f
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
EOF
        chmod 0755 "$ir/init"
        (cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) >"$kdir.new/initrd.img"
        rm -rf "$ir" "$kdir.new/x"
        echo "$kkey" >"$kdir.new/.key"
        rm -rf "$kdir"
        mv "$kdir.new" "$kdir"
fi

# --- root image ---------------------------------------------------------------
# The daemon's libraries (ldd build/edgecd), edgecdctl's, the runtimes and
# what the in-VM tests run with.
PACKAGES="runc crun python3 libmicrohttpd12 libjansson4 libyaml-0-2 libseccomp2
libcgroup2 libsystemd0 libuuid1 libnettle8 libyajl2 libsqlite3-0 libcurl4 libopenblas0-serial"
# shellcheck disable=SC2086
"$here/../mkroot.sh" "$cache/root" $PACKAGES >/dev/null
ikey="$(cat "$cache/root/.mkroot-key") $(cat "$here/edgecd-vmtest" "$here/edgecd-vmtest.service" "$0" | sha256sum | cut -d' ' -f1)"
img=$cache/root.img
if [ ! -f "$img.key" ] || [ "$(cat "$img.key")" != "$ikey" ] || [ ! -f "$img" ]; then
        echo "mkvm: root image" >&2
        t=$cache/image-tree
        rm -rf "$t" "$img" "$img.key"
        cp -a "$cache/root" "$t"
        rm -f "$t/.mkroot-key"
        install -D -m 0755 "$here/edgecd-vmtest" "$t/usr/local/sbin/edgecd-vmtest"
        install -D -m 0644 "$here/edgecd-vmtest.service" "$t/etc/systemd/system/edgecd-vmtest.service"
        mkdir -p "$t/etc/systemd/system/multi-user.target.wants"
        ln -sf /etc/systemd/system/edgecd-vmtest.service "$t/etc/systemd/system/multi-user.target.wants/"
        # A quick boot: no getty, no waiting for a network or for devices
        # nothing mounts.
        for u in getty@tty1.service serial-getty@ttyS0.service systemd-networkd-wait-online.service \
                 systemd-logind.service systemd-udev-trigger.service systemd-udevd.service \
                 systemd-journal-flush.service systemd-update-utmp.service \
                 proc-sys-fs-binfmt_misc.automount systemd-random-seed.service; do
                ln -sf /dev/null "$t/etc/systemd/system/$u"
        done
        echo "/dev/vda / ext4 rw,noatime 0 1" >"$t/etc/fstab"
        ln -sf multi-user.target "$t/etc/systemd/system/default.target"
        size_mb=$(( $(du -sm "$t" | cut -f1) + 768 ))
        mkfs.ext4 -q -F -L edgecd-vm -d "$t" "$img.new" "${size_mb}M" >&2 || die "mkfs.ext4 -d failed"
        rm -rf "$t"
        mv "$img.new" "$img"
        echo "$ikey" >"$img.key"
fi

echo "KERNEL=$kdir/vmlinuz"
echo "INITRD=$kdir/initrd.img"
echo "IMAGE=$img"
