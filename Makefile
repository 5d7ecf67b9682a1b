# hakit — keepalived companions for HA NAT gateways.
#   make demo   a real HA NAT pair in network namespaces fails over, with timings (root)
#   make demo-linode  the same, routed as on Linode: lelastic's GoBGP, an FRR route server
#   make test   format, lint, cargo-deny, MSRV check, unit, CLI and namespace tests, static
#               build checks, packages, chaos, the systemd lab, arm64 under qemu (root)
#   make chaos  the acceptance scenarios on the NAT pair (vrrp_script and uplink-monitor
#               profiles), on the Linode (BGP) labs and a 50,000-flow table handed over;
#               target/chaos/chaos{,-monitor,-aws,-hetzner,-digitalocean,-linode,-linode-frr,-linode-bird,-table}.{json,md}
#   make bench  benchmarks; rewrites BENCHMARKS.md
#   make fuzz   the parser and command-line fuzzers for 15 minutes
#   make static fully static x86_64 binaries in $(STATIC_DIR) (ARCH=arm64: aarch64)
#   make install  binaries, man pages, completions, templates, default config
#                 (PREFIX=/usr, where the templates and units call them; DESTDIR= SYSCONFDIR=/etc)
#   make deb    the Debian package in target/deb/ (ARCH=arm64: the arm64 package)
#   make rpm    the RPM (RHEL family) in target/rpm/, from the same install script
#   make dist   release artefacts in target/dist/: static tarballs, .deb and .rpm for
#               x86_64 and aarch64, SHA256SUMS (version from the git tag)
#   make syslab the .deb and the README's install steps on two containers under real systemd
#   make lab-clean  remove namespaces left by a killed test run

CARGO ?= cargo $(if $(CI),--locked,)
# ARCH=arm64 builds static aarch64 binaries and the arm64 .deb/RPM (cross gcc for ring's C,
# qemu-user to run them); the default is the build machine's amd64.
ARCH ?= amd64
TRIPLE_amd64 := x86_64-unknown-linux-musl
TRIPLE_arm64 := aarch64-unknown-linux-musl
MUSL := $(TRIPLE_$(ARCH))
ifeq ($(MUSL),)
$(error ARCH=$(ARCH): amd64 or arm64)
endif
STATIC_DIR := target/$(MUSL)/release
BINS := garp-burst nat-notify ha-check fip-claim
GEN_DIR := target/docgen
PREFIX ?= /usr
SYSCONFDIR ?= /etc
DESTDIR ?=
export CC_x86_64_unknown_linux_musl ?= musl-gcc
export CC_aarch64_unknown_linux_musl ?= aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_musl ?= aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER ?= aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER ?= qemu-aarch64-static
# --version names the commit (crates/cli/build.rs); -dirty when the tree has local changes.
export HAKIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
# Rust needs ~/.cargo/bin; a root shell from sudo may not have it.
export PATH := $(HOME)/.cargo/bin:$(PATH):/usr/sbin:/sbin

.PHONY: all deps deps-build build static docs install deb rpm dist package syslab examples validate msrv deny arm64 unit integration test fuzz demo demo-linode chaos chaos-soak chaos-margin bench lab-clean clean

all: build

deps:
	@scripts/deps.sh

# Only what building the release needs (make static, deb, rpm, dist): no test stack.
deps-build:
	@scripts/deps.sh --build

build:
	$(CARGO) build --release --bins

static: deps-build
	$(CARGO) build --release --target $(MUSL) --bins
	@scripts/drop-unwind-tables.sh $(STATIC_DIR) $(BINS)
	@scripts/check-static.sh $(STATIC_DIR) $(BINS)

# Man pages and bash/zsh/fish completions, rendered from the binaries' clap definitions, and
# the third-party notices of every crate linked into the binaries (from Cargo.lock).
docs:
	$(CARGO) build -p hakit-docgen
	rm -rf $(GEN_DIR)
	target/debug/hakit-docgen --out $(GEN_DIR)
	scripts/notices.py $(MUSL) $(GEN_DIR)/THIRD-PARTY-NOTICES

install: static docs
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" SYSCONFDIR="$(SYSCONFDIR)" \
	  scripts/install.sh $(STATIC_DIR) $(GEN_DIR)

deb: static docs
	scripts/mkdeb.sh $(STATIC_DIR) $(GEN_DIR) target/deb

rpm: static docs
	scripts/mkrpm.sh $(STATIC_DIR) $(GEN_DIR) target/rpm

# make install into a staging root, and the .deb installed, used, removed and purged
# with dpkg in a private root (root; under CI=true a skip is a failure); the RPM built,
# installed, verified and erased in a private rpm root, rpmlint clean.
package: static docs
	tests/package.sh $(STATIC_DIR) $(GEN_DIR) target/deb
	tests/rpm.sh $(STATIC_DIR) $(GEN_DIR) target/rpm

# The .deb and the bare-metal README's steps on two Debian 12 containers under a real
# systemd (tests/systemd-lab.sh; root; the base image is cached in target/systemd-lab).
syslab: deps deb
	$(CARGO) build --release --target $(MUSL) -p hakit-lab --bin hakit-lab-traffic --bin hakit-fake-cloud --bin hakit-vpc --bin hakit-lab-conf
	tests/systemd-lab.sh $$(ls target/deb/hakit_*_amd64.deb | head -n1) $(STATIC_DIR)

# Re-renders examples/*/keepalived.conf from their templates (the command is each file's
# first line); a test fails when one is out of date.
examples:
	@for v in examples/*/pair.values; do \
	  d=$$(dirname "$$v"); rm -rf target/examples; \
	  scripts/hakit-setup --node a --root target/examples "$$v" >/dev/null && \
	  cp target/examples/etc/keepalived/keepalived.conf "$$d/keepalived.conf" && \
	  cp target/examples/etc/hakit/hakit.toml "$$d/hakit.toml" && echo "rendered $$d"; \
	done
	@set -- $$(sed -n '1s/^# Rendered by: render //p' examples/drbd-nfs/keepalived.conf); \
	  keepalived/render -o examples/drbd-nfs/keepalived.conf "$$@" && echo "rendered examples/drbd-nfs"

# Every shell script git tracks (by its #! line, or a sourced file's shellcheck shell=
# directive), for shellcheck.
SCRIPTS = $(shell git ls-files -z | xargs -0 awk 'FNR == 1 && (/^\#!.*(bash|\/sh)/ || /^\# shellcheck shell=/) { print FILENAME } { nextfile }' 2>/dev/null)

validate:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	shellcheck $(SCRIPTS)

# Every test that needs no root: passes as a normal user with nothing skipped. The
# namespace tests are #[ignore]d ("needs root ... make integration"); one that is not
# fails here (HAKIT_UNIT_ONLY: hakit_lab::available refuses to run).
unit:
	HAKIT_UNIT_ONLY=1 $(CARGO) test --workspace --all-targets

# The namespace tests (root, network namespaces, keepalived, conntrackd, nft): the ones
# make unit leaves out. Without root they skip loudly; under CI=true they fail instead.
integration:
	$(CARGO) test --workspace --all-targets -- --ignored

# The declared MSRV (rust-version = "1.85") is checked, not assumed: resolver 3 keeps new
# lock entries within it, and the whole workspace (tests included) must check with 1.85.
MSRV := $(shell sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
msrv: deps
	cargo +$(MSRV) check --workspace --all-targets --locked --target-dir target/msrv

# Licences (every linked crate's is allowed and its notice shipped), bans and sources of the
# dependency graph (deny.toml). The advisory database needs the network: not run here.
deny: deps
	cargo deny --locked check licenses bans sources

# The aarch64 build as its users get it: static binaries within budget, the arm64 .deb, the
# library crates' unit tests and the namespace tests that cross the kernel boundary (frames
# on the wire, netlink, ICMP, TLS, a provider claim), all run under qemu-user.
arm64: deps
	$(MAKE) --no-print-directory static deb ARCH=arm64
	CARGO="$(CARGO)" tests/arm64.sh target/$(TRIPLE_arm64)/release $$(ls target/deb/hakit_*_arm64.deb | head -n1)

# The release artefacts in target/dist (static tarballs, .deb and .rpm for x86_64 and
# aarch64, SHA256SUMS; scripts/dist.sh), then checked as a user would (tests/dist.sh).
dist: deps-build
	scripts/dist.sh
	tests/dist.sh target/dist

test: deps validate deny msrv unit integration static package chaos syslab arm64 dist
	@echo "make test: all checks passed"

# The parser fuzzer (tests/fuzz_parsers.rs) and the CLI fuzzer (tests/cli_fuzz.rs), longer
# than the 30 s + 20 s they get in make test. Crashing inputs land in target/fuzz-crashes/.
fuzz: deps
	HAKIT_FUZZ_SECONDS=$${HAKIT_FUZZ_SECONDS:-600} HAKIT_CLI_FUZZ_SECONDS=$${HAKIT_CLI_FUZZ_SECONDS:-300} \
	  $(CARGO) test --test fuzz_parsers --test cli_fuzz -- --include-ignored --nocapture

demo: deps
	$(CARGO) build --release --bins -p hakit -p hakit-lab
	target/release/hakit-demo --bin-dir target/release --out-dir target/demo

# The same pair routed as Linode routes it: lelastic's GoBGP, an FRR route server (BGP).
demo-linode: deps
	$(CARGO) build --release --bins -p hakit -p hakit-lab
	target/release/hakit-demo --bin-dir target/release --out-dir target/demo-linode --linode

# The acceptance scenarios run the shipped static binaries; the lab's own tools are
# built for the same target so the release dependencies are compiled once.
chaos: deps static
	$(CARGO) build --release --target $(MUSL) -p hakit-lab
	$(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos
	$(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos --lab l2 --only soft,hard
	$(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos --lab active
	HAKIT_CHAOS_SOAK_SECONDS=$${HAKIT_CHAOS_SOAK_SECONDS:-180} \
	  $(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos --lab monitor --only wan-down,gateway-dead,path-dead,shared-blip,vrrp-cut,monitor-killed,soak
	$(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos --lab aws
	$(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos --lab hetzner
	$(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos --lab digitalocean
	$(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos --lab linode
	$(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos --lab linode-frr
	$(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos --lab linode-bird
	HAKIT_CHAOS_TABLE_FLOWS=$${HAKIT_CHAOS_TABLE_FLOWS:-50000} \
	  $(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos --lab table

bench: deps static
	@[ -x .tools/venv/bin/aws ] || { echo "bench: installing the AWS CLI (PyPI) into .tools/venv, fip-claim's comparison"; .tools/venv/bin/pip install -q --disable-pip-version-check awscli; }
	$(CARGO) build --release -p hakit-lab
	$(CARGO) build --release --target $(MUSL) -p hakit-lab
	target/release/hakit-bench --static-dir $(STATIC_DIR) --out BENCHMARKS.md

# The long versions of two make chaos scenarios: the uplink monitor's soak (180 s there):
# 2% loss and 5 ms +- 5 ms of delay on each node's WAN and LAN (VRRP) egress, a CPU hog in
# each node, ten keepalived reloads, for HAKIT_CHAOS_SOAK_SECONDS (default 600); and the
# VRRP path cut ten times for 30 s (2 x 5 s there); then the soak again with the L2 fast
# profile (PROFILE_SPEED=fast: 10 ms adverts, 4 missed), into target/chaos-fast.
chaos-soak: deps static
	$(CARGO) build --release --target $(MUSL) -p hakit-lab
	HAKIT_CHAOS_SOAK_SECONDS=$${HAKIT_CHAOS_SOAK_SECONDS:-600} \
	HAKIT_CHAOS_VRRP_CUTS=$${HAKIT_CHAOS_VRRP_CUTS:-10} HAKIT_CHAOS_VRRP_CUT_SECONDS=$${HAKIT_CHAOS_VRRP_CUT_SECONDS:-30} \
	  $(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos --lab monitor --only vrrp-cut,soak
	HAKIT_CHAOS_PROFILE=fast HAKIT_CHAOS_SOAK_SECONDS=$${HAKIT_CHAOS_SOAK_SECONDS:-600} \
	  $(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos-fast --lab monitor --only soak

# How far the soak's impairment can rise before the pair flaps (BENCHMARKS.md, "Margins"):
# the soak (e) for 60 s per step, loss rising with the delay as shipped, then the delay
# rising with the loss as shipped, for both profiles. A step that flaps fails its row, which
# is the point: the results are read from target/chaos-margin/*/chaos-monitor.json.
chaos-margin: deps static
	$(CARGO) build --release --target $(MUSL) -p hakit-lab
	for p in standard fast; do \
	  for l in 10 20 30; do \
	    HAKIT_CHAOS_PROFILE=$$p HAKIT_CHAOS_SOAK_SECONDS=60 HAKIT_CHAOS_SOAK_LOSS=$$l \
	      $(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos-margin/$$p-loss$$l --lab monitor --only soak || true; \
	  done; \
	  for d in 20 40; do \
	    HAKIT_CHAOS_PROFILE=$$p HAKIT_CHAOS_SOAK_SECONDS=60 HAKIT_CHAOS_SOAK_DELAY_MS=$$d \
	      $(STATIC_DIR)/hakit-chaos --bin-dir $(STATIC_DIR) --out-dir target/chaos-margin/$$p-delay$$d --lab monitor --only soak || true; \
	  done; \
	done

lab-clean:
	@$(CARGO) run -q -p hakit-lab --bin hakit-lab-clean

clean:
	$(CARGO) clean
