#!/bin/sh
# setup-debian.sh: install what moonrig needs on Debian 12 (as root), then build it in build/.
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
  build-essential autoconf automake libtool pkg-config clang libclang-rt-14-dev \
  liblua5.4-dev libsystemd-dev libnl-3-dev libnl-route-3-dev libcmocka-dev \
  libjansson-dev libedit-dev libxml2-utils \
  systemd systemd-container dbus iproute2 iputils-ping netcat-openbsd curl hello nginx time \
  qemu-system-x86 busybox-static cpio socat debootstrap >/dev/null
autoreconf -fi >/dev/null 2>&1
mkdir -p build
cd build
[ -f Makefile ] || ../configure --enable-werror -q
make -j"$(nproc)" -s
