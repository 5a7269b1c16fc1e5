#!/usr/bin/env bash
# Makes a fresh Debian 12 machine ready to build and test Oxidase.
#
# Installs what is missing and nothing else, so a second run prints nothing:
#   - Julia 1.5.3 from the Debian 11 (bullseye) archive, pinned so that no other
#     package is taken from bullseye;
#   - bullseye's libunwind8 1.3.2: Julia 1.5.3 segfaults on any thrown exception
#     with Debian 12's libunwind 1.6;
#   - llvm-19-dev (plus zlib/zstd/libxml2 headers that llvm-sys links against);
#   - an empty Julia registry in the depot, so Pkg works offline.
set -euo pipefail

log() { echo "bootstrap: $*"; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

apt_log=$(mktemp)
trap 'rm -f "$apt_log"' EXIT
# Runs a command quietly; shows its output only when it fails.
quiet() {
    if ! "$@" >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        echo "bootstrap: failed: $*" >&2
        exit 1
    fi
}
apt_install() {
    DEBIAN_FRONTEND=noninteractive quiet $SUDO apt-get install -y -q -o Dpkg::Use-Pty=0 "$@"
}

apt_updated=0
apt_update() {
    if [ "$apt_updated" -eq 0 ]; then
        quiet $SUDO apt-get update -q
        apt_updated=1
    fi
}

# --- bullseye source, pinned low -------------------------------------------------
if [ ! -f /etc/apt/sources.list.d/oxidase-bullseye.list ]; then
    log "adding the Debian 11 (bullseye) archive, pinned below bookworm"
    echo "deb http://deb.debian.org/debian bullseye main" |
        $SUDO tee /etc/apt/sources.list.d/oxidase-bullseye.list >/dev/null
    $SUDO tee /etc/apt/preferences.d/oxidase-bullseye >/dev/null <<'PIN'
# Oxidase: take only what we name from bullseye.
Package: *
Pin: release n=bullseye
Pin-Priority: 100

# Julia 1.5.3 crashes in libunwind 1.6 on every exception; hold the 1.3 series.
Package: libunwind8
Pin: release n=bullseye
Pin-Priority: 1001
PIN
fi

pkg_version() { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | awk '/install ok installed/ {print $4}'; }

# --- Julia 1.5.3 ------------------------------------------------------------------
if ! command -v julia >/dev/null 2>&1; then
    apt_update
    log "installing julia 1.5.3 from bullseye"
    apt_install julia/bullseye
fi

# --- libunwind 1.3 for Julia ------------------------------------------------------
case "$(pkg_version libunwind8)" in
    1.3.*) ;;
    *)
        apt_update
        log "installing libunwind8 1.3 from bullseye (Julia 1.5.3 crashes on exceptions with 1.6)"
        apt_install --allow-downgrades libunwind8/bullseye
        ;;
esac

# --- LLVM 19 for the engine -------------------------------------------------------
missing=()
for p in llvm-19-dev zlib1g-dev libzstd-dev libxml2-dev libffi-dev; do
    [ -n "$(pkg_version "$p")" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt_update
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
fi

# --- Julia depot: an empty registry so Pkg never tries to clone General ---------------
depot="${JULIA_DEPOT_PATH:-$HOME/.julia}"
depot="${depot%%:*}"
if [ ! -d "$depot/registries" ] || [ -z "$(ls -A "$depot/registries" 2>/dev/null)" ]; then
    log "creating an empty offline Julia registry in $depot/registries/Offline"
    mkdir -p "$depot/registries/Offline"
    cat >"$depot/registries/Offline/Registry.toml" <<'REG'
name = "Offline"
uuid = "6b2d9f0e-4f3a-4c1e-9d57-0a8c5e3b2f11"
repo = ""

[packages]
REG
fi

# --- checks -------------------------------------------------------------------------
if ! julia --startup-file=no -e 'try; sqrt(-1.0); catch; exit(0); end; exit(1)' >/dev/null 2>&1; then
    echo "bootstrap: Julia cannot catch an exception (libunwind?)" >&2
    exit 1
fi
