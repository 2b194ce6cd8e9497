#!/bin/sh
# mkinitrd.sh: a small test VM for moonrig's QEMU backend: Debian's cloud kernel and a busybox
# initramfs whose init runs the NixOS backdoor shell (bash) on /dev/hvc0.
#
# Usage: tests/vm/mkinitrd.sh CACHE_DIR      (as root; e.g. /var/cache/moonrig-vm)
# Prints two lines: the kernel's path, then the initramfs's (CACHE_DIR/vmlinuz, CACHE_DIR/initrd.img).
# Boot them with: -kernel K -initrd I -append "console=tty0 console=ttyS0 panic=-1"
#   -device virtio-serial -device virtconsole,chardev=<the backdoor socket>
#
# The kernel is downloaded once (apt-get download linux-image-cloud-amd64's versioned package) and
# kept: delete CACHE_DIR to take a newer one. The initramfs is rebuilt only when this script, the
# kernel, busybox or bash changed, so a warm cache costs a few milliseconds. Runs are serialised
# with a lock in CACHE_DIR.
#
# Guest: PID 1 is busybox init. It mounts /proc, /sys, /dev, /tmp and /run, loads the virtio modules
# in dependency order (resolved here from modules.dep), then runs the backdoor as NixOS's
# test-instrumentation does (stty raw -echo on hvc0, "Spawning backdoor root shell...", then
# `bash --norc /dev/hvc0` with stderr on ttyS0), respawned if it exits. A busybox shell on tty1
# (the VGA console) takes typed keys; ctrl-alt-delete reboots, `poweroff` powers off.
set -eu

die() { echo "mkinitrd.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 CACHE_DIR (e.g. /var/cache/moonrig-vm)"
cache=$1
script=$(readlink -f "$0")

# Modules the guest loads (names as in modules.dep; '-' and '_' are the same), with their dependencies.
MODULES="virtio_pci virtio_console virtio_net virtio_blk virtio_rng virtio_input virtiofs"
BASH=/bin/bash
# coreutils' timeout exits 124 when it fires, as the NixOS guest's does (busybox's exits 143).
TIMEOUT=/usr/bin/timeout
BUSYBOX=${BUSYBOX:-/bin/busybox}

for tool in cpio apt-get apt-cache dpkg-deb flock sha256sum; do
	command -v "$tool" >/dev/null || die "$tool not found: install it (apt-get install cpio apt dpkg util-linux coreutils)"
done
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found: install busybox-static (apt-get install busybox-static)"
if ldd "$BUSYBOX" >/dev/null 2>&1; then
	die "$BUSYBOX is dynamically linked: install busybox-static (apt-get install busybox-static)"
fi

mkdir -p "$cache" || die "cannot create $cache (run as root, or pass a writable directory)"
cache=$(readlink -f "$cache")
exec 9>"$cache/.lock"
flock 9

# ---- the kernel: downloaded once, then pinned ----
kdir=$cache/kernel
if [ ! -f "$kdir/vmlinuz" ] || [ ! -f "$kdir/version" ]; then
	pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
	[ -n "$pkg" ] || die "no linux-image-cloud-amd64 in the apt lists: run apt-get update (Debian 12 amd64 expected)"
	rm -rf "$cache/debs" "$kdir.tmp"
	mkdir -p "$cache/debs" "$kdir.tmp/root"
	(cd "$cache/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null) ||
		die "apt-get download $pkg failed: check the apt mirror (apt-get update)"
	dpkg-deb -x "$cache"/debs/"$pkg"_*.deb "$kdir.tmp/root"
	version=$(ls "$kdir.tmp/root/lib/modules")
	if [ -z "$version" ] || [ ! -f "$kdir.tmp/root/boot/vmlinuz-$version" ]; then
		die "$pkg holds no kernel"
	fi
	moddir=$kdir.tmp/root/lib/modules/$version
	# The package leaves modules.dep to depmod at install time.
	if [ ! -f "$moddir/modules.dep" ]; then
		if command -v depmod >/dev/null; then
			depmod -b "$kdir.tmp/root" "$version"
		else
			"$BUSYBOX" depmod -b "$kdir.tmp/root" "$version"
		fi
	fi
	cp "$kdir.tmp/root/boot/vmlinuz-$version" "$kdir.tmp/vmlinuz"
	echo "$version" >"$kdir.tmp/version"
	rm -rf "$kdir" "$cache/debs"
	mv "$kdir.tmp" "$kdir"
fi
version=$(cat "$kdir/version")
moddir=$kdir/root/lib/modules/$version

# ---- the initramfs: rebuilt when an input changed ----
libs=$(ldd "$BASH" "$TIMEOUT" | awk '/=>/ { print $3 } /^[ \t]*\/.*ld-linux/ { print $1 }' | sort -u)
# shellcheck disable=SC2086 # $libs is a list
stamp=$( (echo "$version $MODULES"; sha256sum "$script" "$BASH" "$TIMEOUT" "$BUSYBOX" $libs) | sha256sum | cut -c1-64)
if [ -f "$cache/initrd.img" ] && [ -f "$cache/vmlinuz" ] && [ "$(cat "$cache/stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "$cache/vmlinuz"
	echo "$cache/initrd.img"
	exit 0
fi

stage=$(mktemp -d "$cache/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib/modules/$version" "$stage/etc" "$stage/proc" "$stage/sys" "$stage/dev" \
	"$stage/tmp" "$stage/run" "$stage/root" "$stage/usr" "$stage/mnt"
ln -s bin "$stage/sbin"
ln -s ../bin "$stage/usr/bin"
ln -s ../bin "$stage/usr/sbin"
cp "$BUSYBOX" "$stage/bin/busybox"
cp "$BASH" "$stage/bin/bash"
cp "$TIMEOUT" "$stage/bin/timeout"
# Straight to the kernel: busybox init's orderly way sleeps 2 s, and an initramfs has nothing to save.
printf '#!/bin/sh\nsync\nexec busybox poweroff -f\n' >"$stage/bin/poweroff"
printf '#!/bin/sh\nsync\nexec busybox reboot -f\n' >"$stage/bin/reboot"
chmod 755 "$stage/bin/poweroff" "$stage/bin/reboot"
for applet in $("$BUSYBOX" --list); do
	[ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
done
ln -s bin/busybox "$stage/init"
for lib in $libs; do
	mkdir -p "$stage$(dirname "$lib")"
	cp -L "$lib" "$stage$lib"
done
mknod -m 600 "$stage/dev/console" c 5 1
mknod -m 666 "$stage/dev/null" c 1 3

# Dependencies first: a depth-first walk over modules.dep (which lists each module's dependencies,
# not in load order).
order=$(awk -v want="$MODULES" '
	function norm(p) { sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/-/, "_", p); return p }
	function visit(m,   n, i, d) {
		if (m in seen) return
		seen[m] = 1
		n = split(deps[m], d, " ")
		for (i = 1; i <= n; i++) visit(d[i])
		print m
	}
	{ m = $1; sub(/:$/, "", m); path[norm(m)] = m; $1 = ""; deps[m] = $0 }
	END {
		n = split(want, w, " ")
		for (i = 1; i <= n; i++) {
			if (!(w[i] in path)) { print "missing " w[i] > "/dev/stderr"; exit 1 }
			visit(path[w[i]])
		}
	}' "$moddir/modules.dep") || die "a module of [$MODULES] is not in $moddir/modules.dep"
: >"$stage/etc/modules"
for m in $order; do
	base=$(basename "$m")
	case $base in
	*.ko.xz) xz -dc "$moddir/$m" >"$stage/lib/modules/$version/${base%.xz}"; base=${base%.xz} ;;
	*.ko.zst) zstd -qdc "$moddir/$m" >"$stage/lib/modules/$version/${base%.zst}"; base=${base%.zst} ;;
	*.ko.gz) gzip -dc "$moddir/$m" >"$stage/lib/modules/$version/${base%.gz}"; base=${base%.gz} ;;
	*) cp "$moddir/$m" "$stage/lib/modules/$version/$base" ;;
	esac
	echo "$base" >>"$stage/etc/modules"
done

cat >"$stage/etc/inittab" <<'EOF'
::sysinit:/etc/rcS
::respawn:/bin/backdoor
tty1::respawn:/bin/sh
::ctrlaltdel:/bin/reboot
::shutdown:/bin/sync
EOF

cat >"$stage/etc/rcS" <<EOF
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
while read -r m; do
	insmod /lib/modules/$version/\$m || echo "rcS: insmod \$m failed" >&2
done </etc/modules
ip link set lo up
hostname moonrig-vm
EOF

# NixOS's backdoor.service script, step for step (reference 4.3).
cat >"$stage/bin/backdoor" <<'EOF'
#!/bin/sh
export USER=root HOME=/root PATH=/bin PAGER=
cd /tmp
i=0
while [ ! -e /dev/hvc0 ]; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		echo "backdoor: no /dev/hvc0 after 10 s (is there a virtconsole device?)" >&2
		sleep 10
		exit 1
	fi
	sleep 0.1
done
exec </dev/hvc0 >/dev/hvc0 2>/dev/ttyS0
echo "connecting to host..." >&2
stty -F /dev/hvc0 raw -echo
echo "Spawning backdoor root shell..."
PS1="" exec /bin/bash --norc /dev/hvc0
EOF
chmod 755 "$stage/etc/rcS" "$stage/bin/backdoor"
echo 'root:x:0:0:root:/root:/bin/sh' >"$stage/etc/passwd"
echo 'root:x:0:' >"$stage/etc/group"

# Uncompressed: under TCG, unpacking a compressed archive costs more boot time than loading a few
# more megabytes.
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) >"$cache/initrd.img.tmp"
cp "$kdir/vmlinuz" "$cache/vmlinuz.tmp"
mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
mv "$cache/initrd.img.tmp" "$cache/initrd.img"
echo "$stamp" >"$cache/stamp"
echo "$cache/vmlinuz"
echo "$cache/initrd.img"
