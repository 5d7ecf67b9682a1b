#!/usr/bin/env bash
# Installs what hakit's build, tests, demo and benchmarks need on a fresh Debian machine:
# Debian packages (keepalived, nftables, conntrack-tools, tcpdump, musl-tools, ...) and the
# Rust musl target. Idempotent and quiet when everything is already there.
#
#   scripts/deps.sh           everything (make test, make demo, make bench)
#   scripts/deps.sh --build   only what building the release needs (make static, deb, rpm,
#                             dist): the musl and aarch64 toolchains, file, python3 (the
#                             licence notices), rpmbuild; no test stack
set -euo pipefail

build_only=0
case ${1:-} in
  --build) build_only=1 ;;
  '') ;;
  *) echo "deps: unknown option $1 (--build, or nothing)" >&2; exit 2 ;;
esac

build_pkgs=(musl-tools file python3 rpm cpio gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
pkgs=(keepalived nftables conntrack conntrackd tcpdump iproute2 iputils-arping iputils-ping
      procps musl-tools file curl time openssl prometheus prometheus-node-exporter
      python3-venv               # the PyPI tools' virtual environment (.tools/venv)
      man-db zsh fish lintian    # readers of the man pages, completions and package in tests
      shellcheck                 # make validate: every shell script
      rpm rpmlint cpio           # make rpm (rpmbuild) and its tests (private rpm root, rpm2cpio)
      systemd-container debootstrap    # the systemd lab: Debian 12 containers, real systemd
      ansible-core                     # the systemd lab: the Ansible role and validation play
      frr gobgpd bird2                 # the Linode lab: a real route server, lelastic's GoBGP, BIRD
      dnsmasq-base                     # a real resolver for the dns probe
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)  # make arm64 (ring's C; qemu-user)
if [ "$build_only" -eq 1 ]; then pkgs=("${build_pkgs[@]}"); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  if ! rustup target list --installed 2>/dev/null | grep -qx "$t"; then
    echo "deps: adding Rust target $t"
    rustup target add "$t"
  fi
done
[ "$build_only" -eq 0 ] || exit 0

# The MSRV toolchain (Cargo.toml's rust-version), for `make msrv`.
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
if ! rustup toolchain list 2>/dev/null | grep -q "^$msrv"; then
  echo "deps: installing Rust $msrv (the MSRV) for make msrv"
  rustup toolchain install "$msrv" --profile minimal
fi
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

# cargo-deny checks licences, bans and sources in make test. Built without optimisation:
# 1.5 minutes instead of 7 on two cores, and the check still takes about a second.
DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $DENY_VERSION"; then
  echo "deps: installing cargo-deny $DENY_VERSION (crates.io, unoptimised build, ~1.5 min)"
  cargo install cargo-deny --version "$DENY_VERSION" --locked --debug --quiet
fi

# fip-claim's AWS tests and the VPC model run against moto's EC2 server (loopback only),
# in the checkout's virtual environment: Debian 12's pip refuses system-wide installs (PEP
# 668). Pinned: tests/aws/moto_server.py adds two documented semantics to this version.
venv=.tools/venv
if [ ! -x "$venv/bin/moto_server" ]; then
  echo "deps: installing moto (PyPI) into $venv for the AWS tests"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'moto[ec2,server]==5.2.1'
fi

# Prism validates fip-claim's Linode and Hetzner requests against the providers' OpenAPI
# documents (../shared/specs); installed into the checkout, not globally.
if [ ! -x .tools/prism/node_modules/.bin/prism ]; then
  echo "deps: installing @stoplight/prism-cli (npm) into .tools/prism"
  mkdir -p .tools/prism
  (cd .tools/prism && npm install --silent --no-audit --no-fund @stoplight/prism-cli@5.14.2)
fi
