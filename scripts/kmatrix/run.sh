#!/bin/bash
# run.sh: the kernel matrix. Boots stock Debian kernels under qemu (TCG) and
# runs netxray's end-to-end suite (suite.sh) inside each guest; prints a
# table of checks x kernels and exits non-zero on any failure the
# expectations file (scripts/kmatrix/expect) does not list. Run as root,
# from anywhere; see scripts/kmatrix/README.md.
#
# Usage: run.sh [SERIES...]     SERIES: 5.10 (bullseye), 6.1 (bookworm),
#                                6.12 (bookworm-security), or host (the
#                                suite on this machine, for debugging);
#                                default: 5.10 6.1 6.12
# Env:   NX                    netxray binary (default target/release/netxray
#                              of the project root)
#        KMATRIX_CACHE         kernel packages and what is extracted from
#                              them (default /var/cache/netxray-kmatrix)
#        KMATRIX_WORK          logs and outputs (default /tmp/netxray-kmatrix)
#        KMATRIX_CHECKS        only these checks (space or comma separated)
#        KMATRIX_TMO           seconds before one netxray command is killed
#                              in the guest (default 90)
#        KMATRIX_GUEST_TIMEOUT seconds before a guest is killed (default 600)
#        KMATRIX_EXPECT        expectations file (default scripts/kmatrix/expect)
set -euo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NX=${NX:-target/release/netxray}
case $NX in /*) ;; *) NX=$ROOT/$NX ;; esac
CACHE=${KMATRIX_CACHE:-/var/cache/netxray-kmatrix}
WORK=${KMATRIX_WORK:-/tmp/netxray-kmatrix}
TMO=${KMATRIX_TMO:-90}
GUEST_TMO=${KMATRIX_GUEST_TIMEOUT:-600}
EXPECT=${KMATRIX_EXPECT:-$HERE/expect}
CHECKS=$(echo "${KMATRIX_CHECKS:-}" | tr ',' ' ')
SERIES=${*:-5.10 6.1 6.12}
# apt lists older than this are refreshed before a kernel is picked
APT_MAX_AGE=${KMATRIX_APT_MAX_AGE:-3600}

log() { echo "[kmatrix $(date +%T)] $*" >&2; }
die() {
	log "error: $*"
	exit 2
}

[ "$(id -u)" = 0 ] || die "run as root (qemu's guests are fine without it, but apt-get and the host mode are not)"
[ -x "$NX" ] || die "no netxray binary at $NX (build it: cargo build --release; or set NX)"
mkdir -p "$CACHE" "$WORK"
# one binary for the whole run, even if $NX is replaced meanwhile
NXSRC=$NX
cp "$NXSRC" "$WORK/netxray"
NX=$WORK/netxray
NXSHA=$(sha256sum "$NX" | cut -c1-16)

# ---- what the host needs -------------------------------------------------------
# the project's one set-up script (group "matrix")
"$ROOT/scripts/setup.sh" matrix >&2 || die "scripts/setup.sh matrix failed"
# The list read whole first: `busybox --list | grep -q` fails under pipefail
# when grep exits before busybox has written everything (SIGPIPE).
applets=$(/bin/busybox --list)
for a in nc ping timeout awk httpd wget nslookup; do
	grep -qx "$a" <<<"$applets" || die "/bin/busybox has no '$a' applet (install busybox-static)"
done

# one run at a time per cache
exec 9> "$CACHE/.lock"
flock -w 3600 9 || die "another run.sh holds $CACHE/.lock"

# ---- kernel packages ------------------------------------------------------------
# apt options for a series: bullseye (5.10) through a private configuration
# under $CACHE/apt-bullseye (the host's sources stay as they are), the
# others through the host's own.
apt_opts() { # SERIES
	[ "$1" = 5.10 ] || return 0
	local b=$CACHE/apt-bullseye
	mkdir -p "$b"/lists/partial "$b"/archives/partial "$b"/etc/sources.list.d "$b"/etc/preferences.d
	if [ ! -s "$b/etc/sources.list" ]; then
		# the Debian mirror the host already uses, for bullseye
		local uri sec
		uri=$(grep -h -oE '^(URIs:|deb) +[a-z]+://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2> /dev/null | head -n 1 | awk '{print $2}' || true)
		sec=$(grep -h -oE '^(URIs:|deb) +[a-z]+://[^ ]+/debian-security/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2> /dev/null | head -n 1 | awk '{print $2}' || true)
		uri=${uri%/}
		sec=${sec%/}
		uri=${uri:-http://deb.debian.org/debian}
		sec=${sec:-http://deb.debian.org/debian-security}
		printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s bullseye main\ndeb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s bullseye-security main\n' \
			"$uri" "$sec" > "$b/etc/sources.list"
	fi
	echo "-o Dir::Etc::SourceList=$b/etc/sources.list -o Dir::Etc::SourceParts=$b/etc/sources.list.d" \
		"-o Dir::State::Lists=$b/lists -o Dir::Cache=$b -o Dir::Cache::archives=$b/archives" \
		"-o Dir::Etc::Preferences=$b/etc/preferences -o Dir::Etc::PreferencesParts=$b/etc/preferences.d"
}
lists_dir() { # SERIES
	if [ "$1" = 5.10 ]; then echo "$CACHE/apt-bullseye/lists"; else echo /var/lib/apt/lists; fi
}
fresh_lists() { # SERIES: apt-get update when the lists are missing or old
	local d newest
	d=$(lists_dir "$1")
	newest=$(find "$d" -maxdepth 1 -name '*Packages*' -printf '%T@\n' 2> /dev/null | sort -n | tail -n 1 || true)
	if [ -z "$newest" ] || [ $(($(date +%s) - ${newest%.*})) -gt "$APT_MAX_AGE" ]; then
		log "apt-get update ($1)"
		# shellcheck disable=SC2046
		apt-get $(apt_opts "$1") update -q >&2 || log "apt-get update failed ($1)"
	fi
}
meta_pkg() { # SERIES: the package that depends on the current kernel
	case $1 in
	5.10) echo linux-image-amd64 ;;     # bullseye (+ bullseye-security)
	6.1) echo linux-image-amd64 ;;      # bookworm (+ bookworm-security)
	6.12) echo linux-image-6.12-amd64 ;; # bookworm-security
	*) return 1 ;;
	esac
}

# modules the guest may need (and what they depend on): netfilter and
# nftables, bridge, qdiscs and classifiers, veth, virtio block for the
# output disk, the crc32c implementations nf_tables' libcrc32c needs
MODPATHS='kernel/net/netfilter kernel/net/ipv4/netfilter kernel/net/ipv6/netfilter
kernel/net/bridge kernel/net/sched kernel/drivers/net/veth.ko kernel/drivers/block/virtio_blk.ko
kernel/drivers/virtio kernel/crypto/crc32c_generic.ko kernel/arch/x86/crypto/crc32c-intel.ko'
MODSET=$(echo "$MODPATHS" | md5sum | cut -c1-12)

extract_vmlinux() { # VMLINUZ OUT: the ELF inside a bzImage (xz, zstd or gzip payload)
	local img=$1 out=$2 magic tool off
	for magic in '\xfd7zXZ\x00:unxz' '\x28\xb5\x2f\xfd:unzstd' '\x1f\x8b\x08:gunzip'; do
		tool=${magic##*:}
		for off in $(grep -obUaP "${magic%:*}" "$img" | cut -d: -f1); do
			tail -c +$((off + 1)) "$img" | $tool -c 2> /dev/null > "$out.tmp" || true
			if [ "$(head -c 4 "$out.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
				mv "$out.tmp" "$out"
				return 0
			fi
		done
	done
	rm -f "$out.tmp"
	return 1
}

# fetch SERIES: REL (kernel release) and KDIR ($CACHE/k/REL: vmlinux,
# modules/ with the needed modules, PACKAGE); downloads and extracts only
# what the cache lacks
fetch_kernel() {
	local series=$1 meta pkg ver opts deb k tmp md
	meta=$(meta_pkg "$series") || die "unknown kernel series '$series' (5.10, 6.1, 6.12, host)"
	opts=$(apt_opts "$series")
	fresh_lists "$series"
	pick() { # pkg and ver: the kernel package the meta package points to now
		# shellcheck disable=SC2086
		pkg=$(apt-cache $opts depends "$meta" 2> /dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }' || true)
		ver=""
		# shellcheck disable=SC2086
		[ -z "$pkg" ] || ver=$(apt-cache $opts show --no-all-versions "$pkg" 2> /dev/null | awk '/^Version:/ { print $2; exit }' || true)
	}
	pick
	if [ -z "$pkg" ] || [ -z "$ver" ]; then
		# offline: the newest kernel of the series already in the cache
		k=$(grep -lx "$series" "$CACHE"/k/*/SERIES 2> /dev/null | xargs -r ls -t | head -n 1 || true)
		[ -n "$k" ] || die "apt knows no package behind $meta for $series, and the cache has none"
		KDIR=$(dirname "$k")
		REL=$(basename "$KDIR")
		log "$series: apt gave no kernel; using the cached $(cat "$KDIR/PACKAGE")"
		return 0
	fi
	REL=${pkg#linux-image-}
	KDIR=$CACHE/k/$REL
	deb="$CACHE/debs/${pkg}_${ver//:/%3a}_amd64.deb"
	if [ -s "$KDIR/vmlinux" ] && [ "$(cat "$KDIR/COMPLETE" 2> /dev/null)" = "$(basename "$deb") $MODSET" ]; then
		log "$series: $(basename "$deb") (cached)"
		return 0
	fi
	mkdir -p "$CACHE/debs"
	if [ ! -s "$deb" ]; then
		log "$series: downloading $pkg $ver"
		# shellcheck disable=SC2086
		if ! (cd "$CACHE/debs" && apt-get $opts -o APT::Sandbox::User=root download "$pkg=$ver" >&2); then
			# the archive moved on since the lists were fetched: once more
			log "$series: download failed; apt-get update and again"
			# shellcheck disable=SC2086
			apt-get $opts update -q >&2 || true
			pick
			[ -n "$pkg" ] && [ -n "$ver" ] || die "apt knows no package behind $meta for $series"
			REL=${pkg#linux-image-}
			KDIR=$CACHE/k/$REL
			deb="$CACHE/debs/${pkg}_${ver//:/%3a}_amd64.deb"
			# shellcheck disable=SC2086
			(cd "$CACHE/debs" && apt-get $opts -o APT::Sandbox::User=root download "$pkg=$ver" >&2) ||
				die "apt-get download $pkg=$ver failed"
		fi
		[ -s "$deb" ] || deb=$(ls -t "$CACHE/debs/${pkg}_"*.deb | head -n 1)
	fi
	log "$series: extracting $(basename "$deb")"
	tmp=$KDIR.tmp
	rm -rf "$tmp" "$KDIR"
	mkdir -p "$tmp/x" "$KDIR/modules"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x"
	md=lib/modules/$REL
	[ -d "$tmp/x/$md" ] || md=usr/lib/modules/$REL
	[ -d "$tmp/x/$md" ] || die "no modules in $deb"
	extract_vmlinux "$tmp/x/boot/vmlinuz-$REL" "$KDIR/vmlinux" || die "no vmlinux in $deb"
	cp "$tmp/x/boot/config-$REL" "$KDIR/config" 2> /dev/null || true
	depmod -b "$tmp/x${md%%lib/modules*}" "$REL" 2> /dev/null || depmod -b "$tmp/x" "$REL"
	# the modules wanted and their dependencies (modules.dep), into modules/
	(
		cd "$tmp/x/$md"
		for p in $MODPATHS; do
			find "$p" "$p".* -name '*.ko*' 2> /dev/null || true
		done | while read -r m; do
			echo "$m"
			awk -v m="$m" -F': *' '$1 == m { gsub(/ +/, "\n", $2); print $2 }' modules.dep
		done | grep . | sort -u > "$tmp/list"
		mkdir -p "$KDIR/modules/lib/modules/$REL"
		tar -cf - -T "$tmp/list" modules.order modules.builtin* | tar -xf - -C "$KDIR/modules/lib/modules/$REL"
	)
	depmod -b "$KDIR/modules" "$REL"
	(cd "$KDIR/modules" && find . | cpio -o -H newc --quiet) > "$KDIR/modules.cpio"
	echo "$series" > "$KDIR/SERIES"
	basename "$deb" > "$KDIR/PACKAGE"
	log "$series: $(wc -l < "$tmp/list") modules kept, vmlinux $(du -h "$KDIR/vmlinux" | cut -f1)"
	rm -rf "$tmp"
	# an older kernel of the same series goes, with its package
	local o
	for o in $(grep -lx "$series" "$CACHE"/k/*/SERIES 2> /dev/null); do
		o=$(dirname "$o")
		[ "$o" != "$KDIR" ] || continue
		log "$series: removing the older $(cat "$o/PACKAGE" 2> /dev/null) from the cache"
		[ -s "$o/PACKAGE" ] && [ "$(cat "$o/PACKAGE")" != "$(basename "$deb")" ] && rm -f "$CACHE/debs/$(cat "$o/PACKAGE")"
		rm -rf "$o"
	done
	echo "$(basename "$deb") $MODSET" > "$KDIR/COMPLETE"
}

# ---- the initramfs ------------------------------------------------------------------
copy_bin() { # BIN ROOT DEST: a binary and the libraries ldd names
	local bin=$1 root=$2 dest=$3 lib
	mkdir -p "$root$(dirname "$dest")"
	cp -L "$bin" "$root$dest"
	for lib in $(ldd "$bin" 2> /dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}
# the part shared by every kernel: $WORK/userland.cpio
build_userland() {
	local u=$WORK/userland a
	rm -rf "$u"
	mkdir -p "$u"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,proc,sys,dev,run,tmp,root,kmx,lib/modules}
	copy_bin /bin/busybox "$u" /bin/busybox
	for a in $(/bin/busybox --list); do
		case $a in ip | tc | modprobe | insmod | rmmod | lsmod | depmod | modinfo | bash | busybox) continue ;; esac
		ln -sf busybox "$u/bin/$a"
	done
	copy_bin "$NX" "$u" /usr/local/bin/netxray
	copy_bin "$(command -v ip)" "$u" /usr/sbin/ip
	copy_bin "$(command -v tc)" "$u" /usr/sbin/tc
	copy_bin "$(command -v nft)" "$u" /usr/sbin/nft
	copy_bin "$(command -v bash)" "$u" /bin/bash
	copy_bin "$(command -v kmod)" "$u" /usr/bin/kmod
	for a in modprobe insmod rmmod lsmod depmod modinfo; do ln -sf ../usr/bin/kmod "$u/sbin/$a"; done
	cp /etc/protocols /etc/services "$u/etc/" 2> /dev/null || true
	echo "root:x:0:0:root:/root:/bin/sh" > "$u/etc/passwd"
	echo "root:x:0:" > "$u/etc/group"
	cp "$HERE/init" "$u/init"
	cp "$HERE/suite.sh" "$HERE/jflat.awk" "$u/kmx/"
	chmod +x "$u/init" "$u/kmx/suite.sh"
	(cd "$u" && find . | cpio -o -H newc --quiet) > "$WORK/userland.cpio"
	log "userland: $(du -h "$WORK/userland.cpio" | cut -f1) (netxray $NXSRC, sha256 $NXSHA)"
}

# ---- one guest ----------------------------------------------------------------------
# boot SERIES: $WORK/SERIES/{console.txt,results.txt,out/,log.txt}
boot() {
	local series=$1 o=$WORK/$1 rc=0 t0 t1 qpid
	rm -rf "$o"
	mkdir -p "$o/out"
	cat "$WORK/userland.cpio" "$KDIR/modules.cpio" > "$o/initrd.cpio"
	truncate -s 64M "$o/disk.img"
	: > "$o/results.txt"
	log "$series: booting $REL ($(cat "$KDIR/PACKAGE")) under qemu TCG"
	t0=$(date +%s)
	timeout -s KILL "$GUEST_TMO" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 2048 \
		-net none -display none -monitor none -vga none -no-reboot \
		-serial "file:$o/console.txt" -serial "file:$o/results.txt" \
		-drive "file=$o/disk.img,format=raw,if=virtio" \
		-kernel "$KDIR/vmlinux" -initrd "$o/initrd.cpio" \
		-append "console=ttyS0 panic=-1 quiet KMX_TMO=$TMO KMX_CHECKS=$(echo "$CHECKS" | tr ' ' ',')" \
		< /dev/null > "$o/qemu.txt" 2>&1 &
	qpid=$!
	# progress on stderr as the results come
	tail -n +1 -f --pid=$qpid "$o/results.txt" 2> /dev/null | tr -d '\r' |
		grep --line-buffered -E '^(RESULT|KMX)' | sed -u "s/^/[kmatrix $series] /" >&2 &
	wait $qpid || rc=$?
	wait $! 2> /dev/null || true
	t1=$(date +%s)
	WALL[$series]=$((t1 - t0))
	tar -xf "$o/disk.img" -C "$o/out" 2> /dev/null || true
	rm -f "$o/disk.img" "$o/initrd.cpio"
	tr -d '\r' < "$o/results.txt" > "$o/results.clean"
	mv "$o/results.clean" "$o/results.txt"
	{
		echo "# kernel $REL, package $(cat "$KDIR/PACKAGE")"
		echo "# netxray $NXSRC (sha256 $NXSHA)"
		echo "# qemu TCG boot + suite: $((t1 - t0)) s wall, qemu exit code $rc$([ $rc = 137 ] && echo " (killed after $GUEST_TMO s)")"
		echo
		cat "$o/results.txt"
		echo
		echo "################ guest console (ttyS0)"
		tr -d '\r' < "$o/console.txt"
	} > "$o/log.txt"
	log "$series: $((t1 - t0)) s; log $o/log.txt, outputs $o/out/kmx"
}

# the suite on this machine's kernel
run_host() {
	local o=$WORK/host hb=$WORK/host/bin t0 t1 a
	rm -rf "$o"
	mkdir -p "$hb" "$o/out"
	# busybox's ping, nc, timeout and awk, as in the guest
	for a in ping nc timeout awk; do ln -sf /bin/busybox "$hb/$a"; done
	REL=$(uname -r)
	log "host: running the suite on $REL"
	t0=$(date +%s)
	# shellcheck disable=SC2086
	PATH=$hb:$PATH NX=$NX KMX_OUT=$o/out/kmx KMX_TMO=$TMO bash "$HERE/suite.sh" $CHECKS > "$o/results.txt" 2>&1 || true
	t1=$(date +%s)
	WALL[host]=$((t1 - t0))
	sed -i "1i KMX BEGIN $REL" "$o/results.txt"
	echo "KMX END" >> "$o/results.txt"
	cp "$o/results.txt" "$o/log.txt"
}

# ---- the table --------------------------------------------------------------------
declare -A WALL KREL CELL
ALLCHECKS=$(bash "$HERE/suite.sh" --list)
[ -n "$CHECKS" ] || CHECKS=$ALLCHECKS
expected() { # SERIES CHECK: the accepted degradation, or nothing
	[ -f "$EXPECT" ] || return 0
	awk -v s="$1" -v c="$2" '$1 == s && $2 == c && $3 == "lacks" { print $4; exit }' "$EXPECT"
}

have_userland=no
for series in $SERIES; do
	if [ "$series" = host ]; then
		run_host
	else
		fetch_kernel "$series"
		[ $have_userland = yes ] || {
			build_userland
			have_userland=yes
		}
		boot "$series"
	fi
	KREL[$series]=$REL
done

# judge every cell; details of what went wrong go to stdout first
bad=0
notes=()
for series in $SERIES; do
	r=$WORK/$series/results.txt
	ended=yes
	grep -q '^KMX END' "$r" || ended=no
	if [ $ended = no ]; then
		bad=1
		echo
		echo "======== $series (${KREL[$series]}): the guest did not report to the end (booted: $(grep -q '^KMX BEGIN' "$r" && echo yes || echo no))"
		echo "---- its last results"
		tail -n 20 "$r"
		echo "---- the end of its console"
		tail -n 40 "$WORK/$series/console.txt" 2> /dev/null | tr -d '\r'
		echo "---- qemu"
		cat "$WORK/$series/qemu.txt" 2> /dev/null
	fi
	for c in $CHECKS; do
		line=$(grep -m1 "^RESULT $c " "$r" || true)
		st=$(echo "$line" | awk '{ print $3 }')
		what=$(echo "$line" | awk '{ print $4 }')
		exp=$(expected "$series" "$c")
		case $st in
		pass)
			CELL[$c,$series]=pass
			[ -z "$exp" ] || notes+=("note: $series $c passes; the expectation 'lacks $exp' in $(basename "$EXPECT") can go")
			;;
		lacks)
			if [ "$what" = "$exp" ]; then
				CELL[$c,$series]="lacks: $what"
			else
				CELL[$c,$series]="FAIL (lacks: $what)"
				bad=1
				echo
				echo "======== $series $c: lacks $what, not in $(basename "$EXPECT")$([ -n "$exp" ] && echo " (it expects lacks $exp)")"
				echo "$line"
			fi
			;;
		fail)
			CELL[$c,$series]=FAIL
			bad=1
			echo
			echo "======== $series $c: FAIL$([ -n "$exp" ] && echo " (expected: lacks $exp)")"
			sed -n "/^DETAIL-BEGIN $c\$/,/^DETAIL-END $c\$/p" "$r" | sed '1d;$d'
			;;
		*)
			CELL[$c,$series]="FAIL (no result)"
			bad=1
			;;
		esac
	done
done

echo
echo "netxray kernel matrix: $NXSRC (sha256 $NXSHA); logs under $WORK/<series>/"
{
	printf 'CHECK'
	for s in $SERIES; do printf '\t%s' "$s"; done
	printf '\n'
	printf 'kernel'
	for s in $SERIES; do printf '\t%s' "${KREL[$s]}"; done
	printf '\n'
	for c in $CHECKS; do
		printf '%s' "$c"
		for s in $SERIES; do printf '\t%s' "${CELL[$c,$s]}"; done
		printf '\n'
	done
	printf 'wall time'
	for s in $SERIES; do printf '\t%s s' "${WALL[$s]:-?}"; done
	printf '\n'
} | awk -F'\t' '
	{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) }; if (NF > nf) nf = NF }
	END { for (r = 1; r <= NR; r++) { l = ""; for (i = 1; i <= nf; i++) l = l sprintf("%-" (w[i] + 2) "s", c[r, i]); sub(/ +$/, "", l); print l } }'
for n in "${notes[@]}"; do echo "$n"; done
if [ $bad = 0 ]; then
	echo "kernel matrix: every check passed or degraded as expected"
else
	echo "kernel matrix: FAILED (details above; full logs under $WORK)"
fi
exit $bad
