#!/bin/busybox sh
# /init of the nethuns test guest: load the modules, mount the host's / (9p, read-only) at
# /host, give it a guest /proc, /sys, /dev, /tmp, /run and a hugetlbfs, then run the script
# the kernel command line names (nethuns.run=PATH, a host path) chrooted into /host. Its
# output goes to the second serial port, which the host reads; the kernel's to the first.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
out=/dev/ttyS1
say() { echo "nethuns-vm: $*" > $out; }
finish() {
  echo "@@nethuns-vm done rc=$1" > $out
  sync
  poweroff -f
}
for m in $(cat /modules.order); do
  insmod /lib/modules/$m.ko || say "insmod $m failed"
done
# i6300esb: QEMU powers the guest off if the kernel stops feeding it for 60 s.
wd="no watchdog"
[ -e /dev/watchdog ] && watchdog -t 5 -T 60 /dev/watchdog && wd="watchdog 60 s"
run=$(sed -n 's/.*nethuns\.run=\([^ ]*\).*/\1/p' /proc/cmdline)
keep=$(sed -n 's/.*nethuns\.keep=\([^ ]*\).*/\1/p' /proc/cmdline)
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose root /host \
  || { say "mounting the host's / over 9p failed"; finish 125; }
# The host's / as it is, before the guest's own /tmp and /run cover parts of it.
mkdir -p /lower
mount --bind /host /lower
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mount -t tmpfs tmpfs /host/tmp
mount -t tmpfs tmpfs /host/run
mount -t bpf bpf /host/sys/fs/bpf 2>/dev/null
mkdir -p /host/dev/hugepages /host/dev/shm
mount -t hugetlbfs nodev /host/dev/hugepages
mount -t tmpfs tmpfs /host/dev/shm
# The workspace and target directory stay visible (read-only) where a guest tmpfs covers them.
for k in $(echo "$keep" | tr ',' ' '); do
  case "$k" in
    /tmp/*|/run/*) mkdir -p "/host$k" && mount --bind "/lower$k" "/host$k" \
      || say "cannot keep $k visible" ;;
  esac
done
say "up: $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, $wd, run $run"
[ -f "/host$run" ] || { say "no run script /host$run"; finish 125; }
chroot /host /bin/sh "$run" > $out 2>&1
finish $?
