#!/usr/bin/env bash
# Make a futhark compiler available to ./.venv when none is there (called by scripts/setup.sh; idempotent).
#
#   1. $FUTHARK set, or `futhark` on PATH: use it, install nothing.
#   2. A working private install from an earlier run (.venv/futhark): link it again.
#   3. The system's own archive has a `futhark` package (Debian 13+, Ubuntu/Debian derivatives): apt-get install it.
#   4. Debian 12: Debian 13's binary package and the runtime libraries it needs, downloaded by apt itself with a
#      private configuration (own sources list, state and cache: the system's sources and libc are never touched),
#      unpacked with dpkg-deb into .venv/futhark and pointed at its own loader and libraries with patchelf.
#
# The result is linked as .venv/bin/futhark, where futhark-lab looks after $FUTHARK and PATH, so
# `.venv/bin/futhark-lab` and `.venv/bin/python -m pytest` find it without activating the venv.
# Exit status: 0 when a compiler works afterwards, 1 otherwise (with the reason and the manual routes).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=$(realpath -m "${VENV:-.venv}")
PREFIX="$VENV/futhark"
LINK="$VENV/bin/futhark"
SUITE=${FUTHARK_DEBIAN_SUITE:-trixie}
MIRROR=${FUTHARK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# futhark's own package and what its binary loads (ldd of trixie's futhark), glibc and its loader included.
PACKAGES=(futhark libc6 libgmp10 libffi8 libnuma1 libtinfo6 zlib1g libcmark-gfm0.29.0.gfm.13
          libcmark-gfm-extensions0.29.0.gfm.13)

say() { echo "setup: $*"; }
manual() {
  say "could not install futhark: $1"
  say "install it by hand: 'nix develop' in this repository, or a release tarball from"
  say "  https://futhark-lang.org/releases/ (futhark-<version>-linux-x86_64.tar.xz; make install PREFIX=\$HOME/.local),"
  say "  then put it on PATH or set FUTHARK=/path/to/futhark (environment.md#setting-up)."
  exit 1
}
works() { "$1" --version >/dev/null 2>&1; }

if [ -n "${FUTHARK:-}" ]; then
  if works "$FUTHARK"; then say "futhark: using \$FUTHARK=$FUTHARK ($("$FUTHARK" --version | head -1))"; exit 0; fi
  manual "\$FUTHARK=$FUTHARK does not run"
fi
if command -v futhark >/dev/null 2>&1 && [ "$(readlink -f "$(command -v futhark)")" != "$(readlink -f "$LINK" 2>/dev/null)" ]; then
  say "futhark: using $(command -v futhark) from PATH ($(futhark --version | head -1))"; exit 0
fi
if [ -x "$PREFIX/usr/bin/futhark" ] && works "$PREFIX/usr/bin/futhark"; then
  ln -sfn "$PREFIX/usr/bin/futhark" "$LINK"
  say "futhark: $("$LINK" --version | head -1) already in $PREFIX (Debian $SUITE package)"; exit 0
fi

command -v apt-get >/dev/null 2>&1 || manual "no apt-get on this machine"
[ "$(id -u)" = 0 ] || manual "installing needs root (apt); run scripts/setup.sh as root"
export DEBIAN_FRONTEND=noninteractive

# 3. The system's own archive.
if apt-cache policy futhark 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  apt-get install -y -qq --no-install-recommends futhark >/dev/null || manual "apt-get install futhark failed"
  say "futhark: installed $(futhark --version | head -1) from this system's package archive (apt-get install futhark)"
  exit 0
fi

# 4. Debian 13's package through a private apt configuration.
dpkg -s patchelf >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends patchelf >/dev/null \
  || manual "could not install patchelf"
APT="$VENV/futhark-apt"
rm -rf "$APT" "$PREFIX.tmp"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/debs" "$PREFIX.tmp"
echo "deb $MIRROR $SUITE main" >"$APT/sources.list"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
opts=(-o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
      -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o "Dir::State::Status=/dev/null"
      -o "APT::Architecture=amd64" -o "APT::Architectures=amd64" -o "Debug::NoLocking=1")
[ -f "$keyring" ] && opts+=(-o "Dir::Etc::Trusted=$keyring" -o "Dir::Etc::TrustedParts=/nonexistent")
say "futhark: not on PATH; fetching Debian $SUITE's futhark package with a private apt configuration ($APT)"
apt-get "${opts[@]}" -qq update >"$APT/update.log" 2>&1 || manual "apt-get update of $MIRROR $SUITE failed ($(tail -1 "$APT/update.log"))"
(cd "$APT/debs" && apt-get "${opts[@]}" -qq download "${PACKAGES[@]}" >"$APT/download.log" 2>&1) \
  || manual "apt-get download failed ($(tail -1 "$APT/download.log"))"
for deb in "$APT"/debs/*.deb; do dpkg-deb -x "$deb" "$PREFIX.tmp"; done
lib="$PREFIX/usr/lib/x86_64-linux-gnu"
# usrmerge: trixie's libc6 ships its loader under /usr/lib64 and /usr/lib/x86_64-linux-gnu.
loader=$lib/ld-linux-x86-64.so.2
rm -rf "$PREFIX"; mv "$PREFIX.tmp" "$PREFIX"
[ -e "$loader" ] || manual "the unpacked libc6 has no $loader"
patchelf --set-interpreter "$loader" --set-rpath "$lib" "$PREFIX/usr/bin/futhark"
works "$PREFIX/usr/bin/futhark" || manual "the patched binary does not run: $("$PREFIX/usr/bin/futhark" --version 2>&1 | head -2)"
ln -sfn "$PREFIX/usr/bin/futhark" "$LINK"
version=$(dpkg-deb -f "$APT"/debs/futhark_*.deb Version)
rm -rf "$APT/cache" "$APT/lists"
say "futhark: installed $("$LINK" --version | head -1) (Debian $SUITE package futhark $version, from $MIRROR) into $PREFIX, linked as $LINK"
