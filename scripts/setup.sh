# Sourced by scripts/test and scripts/demo: everything a fresh Debian machine needs.
# Installs the Debian packages the tests and the demo drive (real compilers, distcc,
# network and mDNS tools, zsh for the completion test, make, cmake and ninja for the
# build-system tests) when missing, then a venv in .venv (or $P2PCC_VENV) holding the
# package with its test extra.  Needs root for the apt step only.

APT_PACKAGES=(
    distcc gcc-11 g++-11 gcc-12 g++-12 clang binutils
    iproute2 iputils-ping nftables util-linux bubblewrap dash
    python3-venv avahi-daemon dbus-daemon zsh
    make cmake ninja-build
)
VENV=${P2PCC_VENV:-.venv}

say() { printf '\n== %s\n' "$*"; }

p2pcc_setup() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        say "installing Debian packages: ${missing[*]}"
        if [ "$(id -u)" -ne 0 ]; then
            echo "p2pcc: these packages are missing and only root can install them: ${missing[*]}" >&2
            exit 1
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV"
        python3 -m venv "$VENV"
    fi
    say "installing p2pcc with its test extra into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
}
