#!/usr/bin/env bash
# Installs tlf-edge as a system service on 64-bit Debian 12, Raspberry Pi OS (bookworm, 64-bit)
# or Ubuntu 22.04 and later.
#
#   sudo deploy/install.sh [SOURCE]
#
# SOURCE: a checkout of tlf-edge (default: the one this script is in) or a built wheel (.whl).
# The unit, the udev rules and the example config come from the folder this script is in.
#
# What it does, each step skipped when already done, so running it again only upgrades:
#   apt packages (python3, python3-venv, tesseract-ocr) - system user tlf-edge (groups video, dialout)
#   - venv /opt/tlf-edge/venv with tlf-edge[ocr] (pip fetches the dependencies from PyPI, wheels
#   preferred: a cart needs no compiler) - /etc/systemd/system/tlf-edge.service
#   - /etc/udev/rules.d/99-tlf-edge.rules - /etc/tlf-edge/tlf-edge.toml (from tlf-edge.cart.toml:
#   the capture card and the display by their udev names; an existing one is kept)
#   - when systemd runs (not in a chroot): daemon-reload, enable, restart if it was running
#   - `tlf-edge doctor` as the service user; its exit status is the script's.
#
# Environment: TLF_PREFIX (default /opt/tlf-edge), TLF_SKIP_APT=1 (do not touch apt),
# TLF_SKIP_DOCTOR=1, PIP_* (pip's own settings, e.g. PIP_INDEX_URL for a local mirror).
set -euo pipefail

PREFIX=${TLF_PREFIX:-/opt/tlf-edge}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE=${1:-$(dirname "$HERE")}
SERVICE_USER=tlf-edge
CONFIG_DIR=/etc/tlf-edge
STATE_DIR=/var/lib/tlf-edge
UNIT=/etc/systemd/system/tlf-edge.service
RULES=/etc/udev/rules.d/99-tlf-edge.rules
PACKAGES=(python3 python3-venv tesseract-ocr)  # tesseract-ocr: reads the screen's scale numbers ([ocr] extra)

say() { printf 'install.sh: %s\n' "$*"; }
die() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}

# --- checks -----------------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || die "run as root (sudo $0)"
[[ -r /etc/os-release ]] || die "no /etc/os-release: not a Debian-like system"
# shellcheck source=/dev/null
. /etc/os-release
case " ${ID:-} ${ID_LIKE:-} " in
    *" debian "* | *" ubuntu "*) ;;
    *) die "${PRETTY_NAME:-this system} is not Debian, Raspberry Pi OS or Ubuntu" ;;
esac
command -v dpkg >/dev/null || die "dpkg not found"
ARCH=$(dpkg --print-architecture)
case $ARCH in
    amd64 | arm64) ;;
    *) die "userland is $ARCH: LiteRT wheels exist for 64-bit systems only (amd64, arm64); on a Raspberry Pi install the 64-bit Raspberry Pi OS" ;;
esac
if [[ -d $SOURCE && -f $SOURCE/pyproject.toml ]]; then
    SOURCE=$(cd "$SOURCE" && pwd)
elif [[ -f $SOURCE && $SOURCE == *.whl ]]; then
    SOURCE=$(cd "$(dirname "$SOURCE")" && pwd)/$(basename "$SOURCE")
else
    die "$SOURCE is neither a tlf-edge checkout (with pyproject.toml) nor a wheel (.whl)"
fi
for f in tlf-edge.service 99-tlf-edge.rules tlf-edge.example.toml tlf-edge.cart.toml; do
    [[ -f $HERE/$f ]] || die "$HERE/$f is missing"
done
say "installing $SOURCE on ${PRETTY_NAME:-$ID} ($ARCH) into $PREFIX"

# --- system packages --------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    say "apt: ${PACKAGES[*]} already installed"
elif [[ ${TLF_SKIP_APT:-0} == 1 ]]; then
    die "missing packages ${missing[*]} and TLF_SKIP_APT=1"
else
    say "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "$(python3 -V) is too old: tlf-edge needs Python 3.10 or later"

# --- service user -----------------------------------------------------------------------------
if getent passwd "$SERVICE_USER" >/dev/null; then
    say "user $SERVICE_USER exists"
else
    say "creating system user $SERVICE_USER"
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "tlf-edge service" "$SERVICE_USER"
fi
# The unit grants these groups to the service (SupplementaryGroups=); membership makes
# `tlf-edge doctor` run as this user see the devices the way the service does.
usermod --append --groups video,dialout "$SERVICE_USER"
install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0750 "$STATE_DIR"

# --- venv and package -------------------------------------------------------------------------
if [[ -x $PREFIX/venv/bin/python ]]; then
    say "venv $PREFIX/venv exists"
else
    say "creating venv $PREFIX/venv"
    install -d -m 0755 "$PREFIX"
    python3 -m venv "$PREFIX/venv"
fi
if [[ -d $SOURCE ]]; then
    say "pip: building the tlf-edge wheel from $SOURCE"
    wheel_dir=$(mktemp -d)
    trap 'rm -rf "$wheel_dir"' EXIT
    "$PREFIX/venv/bin/pip" wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$wheel_dir" "$SOURCE"
    wheel=$(find "$wheel_dir" -name 'tlf_edge-*.whl' | head -n 1)
    [[ -n $wheel ]] || die "pip built no tlf-edge wheel from $SOURCE"
else
    wheel=$SOURCE
fi
say "pip: installing $(basename "$wheel") and its dependencies"
# The dependencies are installed or upgraded only when needed, as wheels where there are any (a
# cart has no compiler); then --force-reinstall --no-deps replaces tlf-edge itself even when a
# changed checkout still carries the same version number.
"$PREFIX/venv/bin/pip" install --quiet --disable-pip-version-check --prefer-binary "${wheel}[ocr]"
"$PREFIX/venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
"$PREFIX/venv/bin/tlf-edge" --help >/dev/null || die "$PREFIX/venv/bin/tlf-edge does not run"
install -m 0644 "$HERE/README.md" "$PREFIX/README.md" 2>/dev/null || true

# --- unit, udev rules, config -----------------------------------------------------------------
unit_text=$(sed "s|/opt/tlf-edge|$PREFIX|g" "$HERE/tlf-edge.service")
if [[ -f $UNIT ]] && [[ $(cat "$UNIT") == "$unit_text" ]]; then
    say "unit $UNIT is up to date"
else
    say "installing $UNIT"
    install -d -m 0755 "$(dirname "$UNIT")"
    printf '%s\n' "$unit_text" >"$UNIT.tmp"
    chmod 0644 "$UNIT.tmp"
    mv "$UNIT.tmp" "$UNIT"
fi
install -d -m 0755 "$(dirname "$RULES")"
install -m 0644 "$HERE/99-tlf-edge.rules" "$RULES"
if command -v udevadm >/dev/null && [[ -S /run/udev/control ]]; then
    udevadm control --reload-rules
    udevadm trigger --subsystem-match=video4linux --subsystem-match=tty
    say "udev rules installed and applied: $RULES"
else
    say "udev rules installed: $RULES (udev is not running here; they apply at the next boot)"
fi
install -d -m 0755 "$CONFIG_DIR"
install -m 0644 "$HERE/tlf-edge.example.toml" "$CONFIG_DIR/tlf-edge.example.toml"
if [[ -e $CONFIG_DIR/tlf-edge.toml ]]; then
    say "keeping the existing $CONFIG_DIR/tlf-edge.toml"
else
    install -m 0644 "$HERE/tlf-edge.cart.toml" "$CONFIG_DIR/tlf-edge.toml"
    say "installed $CONFIG_DIR/tlf-edge.toml: capture card /dev/tlf-capture, display /dev/tlf-display (the udev names; set the USB ids in $RULES)"
fi

# --- systemd ----------------------------------------------------------------------------------
if [[ -d /run/systemd/system ]]; then  # systemd is PID 1 (not a chroot, not a container without it)
    systemctl daemon-reload
    systemctl enable --quiet tlf-edge.service
    if systemctl is-active --quiet tlf-edge.service; then
        systemctl restart tlf-edge.service
        say "tlf-edge.service enabled and restarted"
    else
        say "tlf-edge.service enabled; start it with: systemctl start tlf-edge"
    fi
else
    say "systemd is not running here (chroot?): on the cart run 'systemctl enable --now tlf-edge'"
fi

# --- doctor -----------------------------------------------------------------------------------
if [[ ${TLF_SKIP_DOCTOR:-0} == 1 ]]; then
    say "done (doctor skipped)"
    exit 0
fi
say "tlf-edge doctor, as user $SERVICE_USER in $STATE_DIR:"
status=0
(cd "$STATE_DIR" && runuser -u "$SERVICE_USER" -- env HOME="$STATE_DIR" \
    "$PREFIX/venv/bin/tlf-edge" doctor --config "$CONFIG_DIR/tlf-edge.toml") || status=$?
if ((status == 0)); then
    say "done"
else
    say "installed, but doctor reports a problem (above): fix $CONFIG_DIR/tlf-edge.toml or the devices and run '$PREFIX/venv/bin/tlf-edge doctor --config $CONFIG_DIR/tlf-edge.toml'"
fi
exit "$status"
