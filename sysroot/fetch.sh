#!/bin/sh
# Fetch the Debian packages whose headers and libraries the manifests are generated from, for the
# guest (amd64) and the host (riscv64), and unpack them into sysroot/out/<arch>/.
#
# Bookworm (the machine's own suite) has no riscv64 binaries, so this uses Debian's newer suite
# through a PRIVATE apt configuration kept under sysroot/cache/: its own sources list, lists,
# archives and an empty dpkg status file. Nothing is added to the system's sources and nothing is
# installed into the system; packages are only unpacked with `dpkg -x`.
#
# The mirror is read from the system's own apt sources, never written here. Both architectures must
# resolve every package to the same version; the versions used are written to
# sysroot/versions.lock (checked in). Safe to run twice: downloaded .debs are kept and reused.
#
# Usage: sysroot/fetch.sh                   headers + the libraries' own .so, both architectures
#        sysroot/fetch.sh --runtime-deps    also every library those .so need at run time (the
#                                           full dependency closure, ~130 MB per architecture),
#                                           versions recorded in sysroot/versions-runtime.lock
#        SUITE=trixie sysroot/fetch.sh
set -eu

runtime_deps=0
for a in "$@"; do
    case "$a" in
        --runtime-deps) runtime_deps=1 ;;
        *) echo "fetch.sh: unknown argument $a" >&2; exit 2 ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
suite=${SUITE:-trixie}
cache="$here/cache"
out="$here/out"

# The packages whose headers make the manifests, their runtime libraries, and the headers that
# those headers include (kernel uapi headers, libcrypt). Listed explicitly rather than resolved
# through `apt-get install` so the download stays small: we never run these packages, we only read
# their headers and dynamic symbol tables.
DEV_PKGS="libc6-dev linux-libc-dev libcrypt-dev zlib1g-dev libavcodec-dev libavformat-dev \
libavutil-dev libavfilter-dev libavdevice-dev libswresample-dev libswscale-dev libmp3lame-dev"
RUN_PKGS="libc6 libcrypt1 zlib1g libavcodec61 libavformat61 libavutil59 libavfilter10 libavdevice61 \
libswresample5 libswscale8 libmp3lame0"

mirror() {
    # deb822 first (URIs: lines), then one-line format; the first Debian (non-security) entry wins.
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        u=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
        [ -n "$u" ] && { echo "$u"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        u=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { if ($i !~ /security/) { print $i; exit } else break } }' "$f")
        [ -n "$u" ] && { echo "$u"; return; }
    done
    echo "fetch.sh: no Debian mirror found in /etc/apt sources" >&2
    exit 1
}

url=$(mirror)
echo "fetch.sh: mirror $url, suite $suite"

keyring=/usr/share/keyrings/debian-archive-keyring.gpg

apt_private() {
    tool=$1; arch=$2; shift 2
    d="$cache/apt-$arch"
    "$tool" \
        -o APT::Architecture="$arch" \
        -o APT::Architectures="$arch" \
        -o Dir::Etc::SourceList="$d/sources.list" \
        -o Dir::Etc::SourceParts="$d/sources.list.d" \
        -o Dir::Etc::Preferences="$d/preferences" \
        -o Dir::Etc::PreferencesParts="$d/preferences.d" \
        -o Dir::State="$d/state" \
        -o Dir::State::Lists="$d/lists" \
        -o Dir::State::status="$d/status" \
        -o Dir::Cache="$d/cache" \
        -o Dir::Cache::archives="$d/archives" \
        -o Debug::NoLocking=1 \
        -o APT::Sandbox::User=root \
        -o Acquire::Languages=none \
        "$@"
}

setup_arch() {
    arch=$1
    d="$cache/apt-$arch"
    mkdir -p "$d/sources.list.d" "$d/preferences.d" "$d/state" "$d/lists/partial" \
        "$d/cache" "$d/archives/partial" "$d/debs"
    : > "$d/preferences"
    [ -e "$d/status" ] || : > "$d/status"
    echo "deb [arch=$arch signed-by=$keyring] $url $suite main" > "$d/sources.list"
    apt_private apt-get "$arch" update -qq
}

version_of() {
    apt_private apt-cache "$1" show --no-all-versions "$2" 2>/dev/null | awk '/^Version:/ { print $2; exit }'
}

lock="$here/versions.lock"
tmp_lock=$(mktemp)
trap 'rm -f "$tmp_lock"' EXIT

for arch in amd64 riscv64; do
    setup_arch "$arch"
done

{
    echo "# Debian packages the sysroot and the manifests were made from (written by sysroot/fetch.sh)."
    echo "# suite: $suite"
    echo "# package version (identical for amd64 and riscv64)"
} > "$tmp_lock"

for p in $DEV_PKGS $RUN_PKGS; do
    va=$(version_of amd64 "$p")
    vr=$(version_of riscv64 "$p")
    if [ -z "$va" ] || [ -z "$vr" ]; then
        echo "fetch.sh: package $p missing (amd64 '$va', riscv64 '$vr') in $suite" >&2
        exit 1
    fi
    if [ "$va" != "$vr" ]; then
        echo "fetch.sh: $p has amd64 $va but riscv64 $vr; guest and host must match" >&2
        exit 1
    fi
    echo "$p $va" >> "$tmp_lock"
done

for arch in amd64 riscv64; do
    d="$cache/apt-$arch/debs"
    dest="$out/$arch"
    mkdir -p "$dest"
    while read -r p v; do
        case "$p" in '#'*) continue ;; esac
        # apt-get download names files pkg_version-with-colon-escaped_arch.deb
        vf=$(echo "$v" | sed 's/:/%3a/')
        deb=$(ls "$d/${p}_${vf}_"*.deb 2>/dev/null | head -n 1 || true)
        if [ -z "$deb" ]; then
            (cd "$d" && apt_private apt-get "$arch" download -q "$p=$v")
            deb=$(ls "$d/${p}_${vf}_"*.deb | head -n 1)
        fi
        dpkg -x "$deb" "$dest"
        # The generator reads each package's own file list to know which headers are its own.
        mkdir -p "$dest/lists"
        dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\./|/|' > "$dest/lists/$p.list"
    done < "$tmp_lock"
    echo "fetch.sh: $arch unpacked into $dest"
done

cp "$tmp_lock" "$lock"
echo "fetch.sh: versions recorded in $lock"

[ "$runtime_deps" = 1 ] || exit 0

# The dependency closure of the runtime libraries, resolved by apt against the empty private
# status file (so it includes libc6 and everything below it), downloaded into the same cache.
RUNTIME_ROOTS=$(echo "$RUN_PKGS")
rlock="$here/versions-runtime.lock"
tmp_r=$(mktemp)
{
    echo "# Runtime dependency closure (sysroot/fetch.sh --runtime-deps), per architecture."
    echo "# suite: $suite"
    echo "# arch package version"
} > "$tmp_r"
for arch in amd64 riscv64; do
    d="$cache/apt-$arch"
    # shellcheck disable=SC2086
    apt_private apt-get "$arch" --no-install-recommends -qq --print-uris install $RUNTIME_ROOTS \
        | awk '{ print $2 }' | sed -n 's/^\(.*\)_\(.*\)_\(.*\)\.deb$/\1 \2/p' \
        | sed 's/%3a/:/' | sort > "$d/closure.txt"
    # shellcheck disable=SC2086
    apt_private apt-get "$arch" --no-install-recommends -qq --download-only -y install $RUNTIME_ROOTS
    for deb in "$d/archives"/*.deb; do
        dpkg -x "$deb" "$out/$arch"
    done
    sed "s/^/$arch /" "$d/closure.txt" >> "$tmp_r"
    echo "fetch.sh: $arch runtime closure ($(wc -l < "$d/closure.txt") packages) unpacked into $out/$arch"
done
# Same source version on both sides; binary rebuild suffixes (+bN) may differ per architecture.
diff_out=$(awk '!/^#/ { v = $3; sub(/\+b[0-9]+$/, "", v); if ($2 in seen && seen[$2] != v) print $2, seen[$2], v; seen[$2] = v }' "$tmp_r")
if [ -n "$diff_out" ]; then
    echo "fetch.sh: runtime packages whose versions differ between amd64 and riscv64:" >&2
    echo "$diff_out" >&2
    exit 1
fi
mv "$tmp_r" "$rlock"
echo "fetch.sh: runtime versions recorded in $rlock"
