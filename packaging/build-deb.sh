#!/usr/bin/env bash
# Builds the Debian packages into target/deb/:
#   vpp-maglevd  the daemon (maglevd, unit, example config, man pages) and
#                the web dashboard (maglevd-frontend, its unit, off)
#   vpp-maglev   the client tools (maglevc with bash completion, maglevt,
#                man pages)
# Needs: cargo, dpkg-deb, gzip, binutils (objdump).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
out=target/deb
maint="vpp-maglev developers <vpp-maglev@example.org>"

cargo build --release --locked --bin maglevd --bin maglevc --bin maglevt --bin maglevd-frontend
rm -rf "$out"
mkdir -p "$out"

# Depends from the binaries' shared libraries: the package owning each
# NEEDED library, at least at the version installed here.
depends() {
    local deps=() lib path pkg ver
    for lib in $(objdump -p "$@" | awk '/NEEDED/ {print $2}' | sort -u); do
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
        [ -n "$path" ] || { echo "build-deb: cannot find $lib" >&2; exit 1; }
        pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1) ||
            pkg=$(dpkg -S "$path" | head -1 | cut -d: -f1)
        ver=$(dpkg-query -W -f='${Version}' "$pkg" | sed 's/-[^-]*$//; s/^[0-9]*://')
        deps+=("$pkg (>= $ver)")
    done
    printf '%s\n' "${deps[@]}" | sort -u | paste -sd, | sed 's/,/, /g'
}

man_page() { # source, section dir in the package root
    install -d "$2"
    gzip -9n -c "$1" > "$2/$(basename "$1").gz"
}

docs() { # package root, package name
    install -Dm644 packaging/copyright "$1/usr/share/doc/$2/copyright"
    # A native package (no Debian revision): changelog.gz.
    gzip -9n -c packaging/changelog > "$1/usr/share/doc/$2/changelog.gz"
}

control() { # root, package, depends, section, description...
    local root=$1 pkg=$2 deps=$3 section=$4
    shift 4
    local size
    size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
    install -d "$root/DEBIAN"
    {
        echo "Package: $pkg"
        echo "Version: $version"
        echo "Architecture: $arch"
        echo "Maintainer: $maint"
        echo "Installed-Size: $size"
        echo "Depends: $deps"
        echo "Section: $section"
        echo "Priority: optional"
        echo "Homepage: https://fd.io/"
        printf 'Description: %s\n' "$1"
        shift
        for l in "$@"; do echo " $l"; done
    } > "$root/DEBIAN/control"
}

# --- vpp-maglevd -----------------------------------------------------------
d="$out/vpp-maglevd"
install -Dm755 target/release/maglevd "$d/usr/sbin/maglevd"
install -Dm644 packaging/vpp-maglevd.service "$d/lib/systemd/system/vpp-maglevd.service"
install -Dm755 target/release/maglevd-frontend "$d/usr/sbin/maglevd-frontend"
install -Dm644 packaging/vpp-maglev-frontend.service "$d/lib/systemd/system/vpp-maglev-frontend.service"
# No configuration in /etc: installing must never touch a live VPP. The
# unit starts once the operator writes /etc/vpp-maglev/maglev.yaml
# (ConditionFileNotEmpty=), as keepalived's package does.
install -Dm644 examples/maglev.yaml "$d/usr/share/doc/vpp-maglevd/examples/maglev.yaml"
install -Dm644 examples/bird.conf "$d/usr/share/doc/vpp-maglevd/examples/bird.conf"
install -Dm644 packaging/vpp-maglevd.tmpfiles "$d/usr/lib/tmpfiles.d/vpp-maglevd.conf"
install -d "$d/etc/vpp-maglev"
install -Dm644 packaging/default "$d/etc/default/vpp-maglev"
install -Dm644 packaging/vpp-maglevd.lintian-overrides "$d/usr/share/lintian/overrides/vpp-maglevd"
man_page man/maglevd.8 "$d/usr/share/man/man8"
man_page man/maglevd-frontend.8 "$d/usr/share/man/man8"
man_page man/maglev.yaml.5 "$d/usr/share/man/man5"
docs "$d" vpp-maglevd
control "$d" vpp-maglevd "$(depends target/release/maglevd target/release/maglevd-frontend), adduser, init-system-helpers (>= 1.54)" net \
    "health checker and Maglev load-balancer control plane for VPP" \
    "maglevd health-checks backends (HTTP, HTTPS, TCP, ICMP), computes" \
    "weights from priority failover pools and programs the VPP lb (Maglev)" \
    "plugin over its binary API; it exports Prometheus metrics and is driven" \
    "by maglevc (package vpp-maglev) over a local control socket." \
    "maglevd-frontend, a live web dashboard of one or many maglevds, is" \
    "included with its unit, off until enabled."
printf '/etc/default/vpp-maglev\n' > "$d/DEBIAN/conffiles"
install -m755 packaging/vpp-maglevd/postinst packaging/vpp-maglevd/prerm \
    packaging/vpp-maglevd/postrm "$d/DEBIAN/"

# --- vpp-maglev (client) ---------------------------------------------------
c="$out/vpp-maglev"
install -Dm755 target/release/maglevc "$c/usr/bin/maglevc"
install -Dm644 packaging/maglevc.bash-completion "$c/usr/share/bash-completion/completions/maglevc"
man_page man/maglevc.1 "$c/usr/share/man/man1"
install -Dm755 target/release/maglevt "$c/usr/bin/maglevt"
install -Dm644 packaging/vpp-maglev.lintian-overrides "$c/usr/share/lintian/overrides/vpp-maglev"
man_page man/maglevt.1 "$c/usr/share/man/man1"
docs "$c" vpp-maglev
control "$c" vpp-maglev "$(depends target/release/maglevc target/release/maglevt)" net \
    "command-line tools of maglevd (vpp-maglev)" \
    "maglevc talks to maglevd over its control socket: one-shot commands for" \
    "scripts and an interactive shell with completion and inline help." \
    "maglevt probes every VIP of a maglev.yaml from the client's side and" \
    "shows live which backend answers, the latency and every failure."

for p in "$d" "$c"; do
    dpkg-deb --build --root-owner-group "$p" "$out/" >/dev/null
done
rm -rf "$d" "$c"
ls -l "$out"/*.deb
