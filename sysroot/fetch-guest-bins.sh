#!/bin/sh
# Download (never install) Debian's statically linked x86_64 Go programs that tests/tests/go.rs runs
# natively and under ld-nc, and unpack them with `dpkg -x` into sysroot/cache/guest-bins/root/
# (gitignored). amd64 is this machine's own architecture, so plain `apt-get download` from the
# system's own sources (bookworm) fetches them; nothing is added to the system or installed.
#
#   shfmt      3.6.0-1+b2   /usr/bin/shfmt     (Go 1.19.8)
#   gojq       0.12.11-1    /usr/bin/gojq      (Go 1.19.5)
#   go-md2man  2.0.2+ds1-1  /usr/bin/go-md2man
#
# Each binary is checked to be a static executable (no program interpreter). Safe to run twice:
# existing .debs are reused. Usage: sysroot/fetch-guest-bins.sh [DEST] (default as above).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-"$here/cache/guest-bins"}
pkgs="shfmt gojq go-md2man"
bins="shfmt gojq go-md2man"

mkdir -p "$dest/debs" "$dest/root"
cd "$dest/debs"
for p in $pkgs; do
    if ! ls "${p}"_*_amd64.deb >/dev/null 2>&1; then
        echo "fetch-guest-bins: downloading $p"
        # apt's sandbox user may not write here; the download then runs as the caller (a warning).
        apt-get download -q "$p:amd64" 2>&1 | grep -v 'unsandboxed' || true
        ls "${p}"_*_amd64.deb >/dev/null 2>&1 || { echo "fetch-guest-bins: cannot download $p (apt-get update?)" >&2; exit 1; }
    fi
done
for d in ./*_amd64.deb; do
    dpkg -x "$d" "$dest/root"
done
for b in $bins; do
    f="$dest/root/usr/bin/$b"
    [ -x "$f" ] || { echo "fetch-guest-bins: $f missing after unpacking" >&2; exit 1; }
    # A static executable has no PT_INTERP program header.
    if readelf -lW "$f" | grep -q 'Requesting program interpreter'; then
        echo "fetch-guest-bins: $f is dynamically linked; the Go tests need static binaries" >&2
        exit 1
    fi
done
ls ./*_amd64.deb | sed 's|^\./||' > "$dest/packages.txt"
echo "fetch-guest-bins: $(tr '\n' ' ' < "$dest/packages.txt")-> $dest/root/usr/bin"
