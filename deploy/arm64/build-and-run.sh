#!/usr/bin/env bash
# The cart install on arm64, without an arm64 machine: builds a Debian 12 (bookworm) arm64 root
# with debootstrap, runs deploy/install.sh in it (twice: the second run shows it is idempotent),
# then `tlf-edge run` on the embedded default (bundled model, phantom scanner, emulated display),
# all under qemu user-mode emulation, and times each step. By hand, on an x86-64 Debian or Ubuntu
# host, as root; never in CI (it takes the better part of an hour):
#
#   sudo nice -n 10 deploy/arm64/build-and-run.sh [WORKDIR]      # default /tmp/tlf-arm64
#
# WORKDIR/root is the arm64 system, WORKDIR/build.log everything it printed, WORKDIR/report.md
# the step timings and the outputs of doctor and run. Running it again reuses the root (delete
# WORKDIR to start over). Emulation makes every arm64 step 5-20 times slower than on a real
# Raspberry Pi 5: the timings show what the install does, not how fast a cart is.
#
# qemu runs the arm64 binaries through binfmt_misc when it can be used (mounted and registered
# here if needed); without it, through proot -q (slower). The Debian mirror is the one this
# host's apt uses; CA certificates added on this host (/usr/local/share/ca-certificates, e.g. a
# company proxy's) are copied into the root so that apt and pip inside trust the same servers.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mkdir -p "${1:-/tmp/tlf-arm64}" && cd "${1:-/tmp/tlf-arm64}" && pwd)
ROOT=$WORK/root
LOG=$WORK/build.log
REPORT=$WORK/report.md
SUITE=bookworm
STEPS=()

[[ $(id -u) -eq 0 ]] || { echo "build-and-run.sh: run as root" >&2; exit 1; }
case $WORK/ in "$REPO"/*) echo "build-and-run.sh: WORKDIR must be outside the checkout" >&2; exit 1 ;; esac
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1

# step NAME COMMAND...: run, time and record one step; a failing step ends the script.
step() {
    local name=$1 t0 t1 seconds rc=0
    shift
    printf '\n=== %s\n' "$name"
    t0=$(date +%s.%N)
    "$@" || rc=$?
    t1=$(date +%s.%N)
    seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    STEPS+=("| $name | $seconds | $([[ $rc == 0 ]] && echo ok || echo "exit $rc") |")
    printf '=== %s: %s s, exit %s\n' "$name" "$seconds" "$rc"
    return "$rc"
}

mirror() {  # the first Debian archive URI of this host's apt sources, else deb.debian.org
    local uri
    uri=$(grep -rhoE '^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | grep -oE 'https?://[^[:space:]]+' | head -n 1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

host_tools() {
    local need=()
    command -v debootstrap >/dev/null || need+=(debootstrap)
    [[ -x /usr/bin/qemu-aarch64-static ]] || need+=(qemu-user-static)
    command -v update-binfmts >/dev/null || need+=(binfmt-support)
    if ((${#need[@]})); then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    echo "host: $(uname -m), $(nproc) cores, qemu $(/usr/bin/qemu-aarch64-static --version | head -n 1)"
}

# Sets RUNNER to "chroot" when the kernel runs arm64 binaries through binfmt_misc, else "proot".
RUNNER=chroot
use_binfmt() {
    local bm=/proc/sys/fs/binfmt_misc
    [[ -e $bm/register ]] || mount -t binfmt_misc binfmt_misc "$bm" 2>/dev/null || true
    if [[ -e $bm/register && ! -e $bm/qemu-aarch64 ]]; then
        update-binfmts --enable qemu-aarch64 2>/dev/null || update-binfmts --import qemu-aarch64 2>/dev/null || true
    fi
    if [[ -e $bm/qemu-aarch64 ]] && grep -q '^enabled' "$bm/qemu-aarch64"; then
        echo "binfmt_misc: qemu-aarch64 registered ($(grep -E '^flags' "$bm/qemu-aarch64"))"
    else
        RUNNER=proot
        command -v proot >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq proot >/dev/null
        echo "binfmt_misc not usable here: arm64 binaries run through proot -q qemu-aarch64-static"
    fi
}

# in_root COMMAND...: run a command inside the arm64 root, in a clean environment (nothing of
# this host's PIP_*, proxies or paths leaks in).
ROOT_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb)
in_root() {
    if [[ $RUNNER == chroot ]]; then
        chroot "$ROOT" "${ROOT_ENV[@]}" "$@"
    else
        proot -0 -q /usr/bin/qemu-aarch64-static -r "$ROOT" -b /dev -b /proc -w / "${ROOT_ENV[@]}" "$@"
    fi
}

debootstrap_first() {
    if [[ -f $ROOT/.tlf-debootstrap-done ]]; then
        echo "reusing $ROOT"
        return 0
    fi
    rm -rf "$ROOT"
    debootstrap --arch=arm64 --foreign --variant=minbase --include=ca-certificates \
        "$SUITE" "$ROOT" "$(mirror)"
}

debootstrap_second() {
    if [[ -f $ROOT/.tlf-debootstrap-done ]]; then
        echo "reusing $ROOT"
        return 0
    fi
    [[ $RUNNER == chroot ]] || cp /usr/bin/qemu-aarch64-static "$ROOT/usr/bin/"
    in_root /debootstrap/debootstrap --second-stage
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$(mirror)" "$SUITE" "$(mirror)" "$SUITE" >"$ROOT/etc/apt/sources.list"
    touch "$ROOT/.tlf-debootstrap-done"
}

MOUNTS=()
finish() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount -l "${MOUNTS[$i]}" 2>/dev/null || true
    done
    {
        echo "| step | seconds | result |"
        echo "| --- | ---: | --- |"
        printf '%s\n' "${STEPS[@]}"
    } >"$REPORT"
    printf '\n'
    cat "$REPORT"
    echo "log: $LOG, report: $REPORT"
}
trap finish EXIT

prepare_root() {
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        # Where update-ca-certificates looks, and appended to the bundle pip reads right away:
        # running update-ca-certificates itself under emulation takes minutes.
        local bundle=$ROOT/etc/ssl/certs/ca-certificates.crt crt
        for crt in /usr/local/share/ca-certificates/*.crt; do
            cmp -s "$crt" "$ROOT/usr/local/share/ca-certificates/${crt##*/}" && continue
            cp "$crt" "$ROOT/usr/local/share/ca-certificates/"
            cat "$crt" >>"$bundle"
        done
        echo "host CA certificate(s) in the root: $(find "$ROOT/usr/local/share/ca-certificates" -name '*.crt' | wc -l)"
    fi
    # No /sys: under qemu-user it is this host's, and XNNPACK's CPU detection (cpuinfo), reading
    # an x86 /sys/devices/system/cpu from arm64 code, crashes LiteRT in allocate_tensors()
    # (SIGSEGV, seen with qemu 7.2). Without /sys it falls back to defaults. A real arm64 cart
    # has its own /sys and is not affected.
    if [[ $RUNNER == chroot ]]; then
        local m
        for m in proc dev dev/pts; do
            mountpoint -q "$ROOT/$m" && continue
            case $m in
                proc) mount -t proc proc "$ROOT/proc" ;;
                *) mount --bind "/$m" "$ROOT/$m" ;;
            esac
            MOUNTS+=("$ROOT/$m")
        done
    fi
    # The checkout as it is now, uncommitted files included (what install.sh would see on a cart).
    rm -rf "$ROOT/usr/src/tlf-edge"
    mkdir -p "$ROOT/usr/src/tlf-edge"
    (
        cd "$REPO"
        git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
            [[ -e $f ]] && printf '%s\0' "$f"  # a file deleted but not yet committed is left out
        done | tar --null -T - -cf -
    ) | tar -xf - -C "$ROOT/usr/src/tlf-edge"
    echo "root: $(in_root uname -m), $(in_root python3 -V 2>/dev/null || echo 'no python3 yet'), checkout copied to /usr/src/tlf-edge"
}

# Doctor is skipped by the installer here: the installed config names the cart's udev devices,
# which a qemu root has not got; doctor_in_root checks the embedded default instead.
install_in_root() {
    in_root env PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DEFAULT_TIMEOUT=180 TLF_SKIP_DOCTOR=1 \
        bash /usr/src/tlf-edge/deploy/install.sh /usr/src/tlf-edge
}

doctor_in_root() {
    in_root runuser -u tlf-edge -- sh -c \
        'cd /var/lib/tlf-edge && HOME=/var/lib/tlf-edge /opt/tlf-edge/venv/bin/tlf-edge doctor'
}

run_in_root() {
    in_root runuser -u tlf-edge -- sh -c \
        'cd /var/lib/tlf-edge && HOME=/var/lib/tlf-edge /opt/tlf-edge/venv/bin/tlf-edge run --quiet'
}

# What MemoryDenyWriteExecute=yes in the unit depends on, checked on the arm64 libraries (the
# filter itself cannot be tried under qemu, which generates code): no library wants an
# executable stack, and LiteRT holds none of XNNPACK's code-memory functions (its code generator).
inspect_libraries() {
    local sp so n=0 jit
    local stack=()
    sp=$(find "$ROOT/opt/tlf-edge/venv/lib" -maxdepth 2 -name site-packages -type d | head -n 1)
    while IFS= read -r -d '' so; do
        n=$((n + 1))
        readelf -lW "$so" 2>/dev/null | grep -q 'GNU_STACK.*E' && stack+=("${so#"$sp"/}")
    done < <(find "$sp" -name '*.so*' -type f -print0)
    echo "$n shared libraries in the venv; asking for an executable stack: ${stack[*]:-none}"
    jit=$(find "$sp/ai_edge_litert" -name '*.so*' -type f -exec grep -l -a -F \
        -e xnn_allocate_code_memory -e xnn_finalize_code_memory -e xnn_release_code_memory {} + || true)
    echo "LiteRT libraries with XNNPACK code-memory functions: ${jit:-none}"
}

versions() {
    in_root /opt/tlf-edge/venv/bin/python -c 'import platform, sys
from importlib.metadata import version
print("python", platform.python_version(), platform.machine())
for p in ("tlf-edge", "ai-edge-litert", "numpy", "opencv-python-headless", "pyserial"):
    print(p, version(p))'
}

step "host tools (debootstrap, qemu-user-static, binfmt-support)" host_tools
step "qemu for arm64 binaries (binfmt_misc or proot)" use_binfmt
step "debootstrap $SUITE arm64, first stage (download, unpack)" debootstrap_first
step "debootstrap second stage (configure, under qemu)" debootstrap_second
step "prepare the root (mounts, CA, checkout)" prepare_root
step "deploy/install.sh, first run" install_in_root
step "deploy/install.sh, second run (idempotent)" install_in_root
step "tlf-edge doctor on the embedded default, as user tlf-edge" doctor_in_root
step "tlf-edge run on the embedded default, as user tlf-edge" run_in_root
step "versions in the root" versions
step "arm64 libraries: executable stack, code generation" inspect_libraries

