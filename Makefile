# Makefile: the two commands of the README, over Meson.
#   make demo   install deps, build, run agent code in a sandbox on the embedded defaults
#   make check  install deps, build (warnings as errors), run every test
#   make install [PREFIX=/usr/local] [DESTDIR=]  build and install (meson install)
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20
PYTEST     := /usr/bin/python3 -m pytest

.PHONY: all deps build demo check unit asan integration security fuzz bench clean install \
	guest microvm

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --werror

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	@bash scripts/demo.sh $(BUILD)

unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --werror -Db_sanitize=address,undefined -Db_lundef=false

asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C $(ASAN_BUILD) --suite unit --print-errorlogs
	# the daemon (threads, streams, sqlite) under the sanitizers, driven by its API tests
	AGENTD_BUILD=$(abspath $(ASAN_BUILD)) ASAN_OPTIONS=detect_leaks=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(PYTEST) -q tests/integration/test_daemon.py tests/integration/test_daemon_files.py \
		tests/integration/test_daemon_cli.py tests/integration/test_daemon_stress.py \
		tests/integration/test_daemon_processes.py tests/integration/test_daemon_attach.py \
		tests/integration/test_daemon_ports.py \
		tests/integration/test_daemon_files_api.py \
		tests/integration/test_daemon_ttl.py \
		tests/integration/test_daemon_snapshots.py # issue 12: files, ttl, snapshots
	# issue 12: names
	AGENTD_BUILD=$(abspath $(ASAN_BUILD)) ASAN_OPTIONS=detect_leaks=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(PYTEST) -q tests/integration/test_daemon_names.py \
		tests/integration/test_daemon_network_patch.py
	# issue 13: img-store — image import's parsers and the /v1/images routes
	AGENTD_BUILD=$(abspath $(ASAN_BUILD)) ASAN_OPTIONS=detect_leaks=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(PYTEST) -q tests/integration/test_image.py tests/integration/test_daemon_images.py \
		tests/security/test_image_tars.py
	# issue 14: mcp — agentd mcp (dispatcher, stdio, HTTP) under the sanitizers
	AGENTD_BUILD=$(abspath $(ASAN_BUILD)) ASAN_OPTIONS=detect_leaks=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(PYTEST) -q tests/integration/test_mcp.py
	# issue 15: vm-gondolin — the plugin's helper channel against the hostile double
	AGENTD_BUILD=$(abspath $(ASAN_BUILD)) ASAN_OPTIONS=detect_leaks=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(PYTEST) -q tests/integration/test_gondolin.py

integration: build
	# issue 15: vm-host. The micro-VM's kernel and initramfs before the microvm tests
	ninja -C $(BUILD) guest
	AGENTD_BUILD=$(abspath $(BUILD)) $(PYTEST) -q tests/integration

security: build
	ninja -C $(BUILD) guest  # issue 15: vm-host
	AGENTD_BUILD=$(abspath $(BUILD)) $(PYTEST) -q tests/security

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Dtests=false

fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	mkdir -p $(FUZZ_BUILD)/corpus-policy
	$(FUZZ_BUILD)/fuzz/fuzz_policy -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		-dict=fuzz/policy.dict $(FUZZ_BUILD)/corpus-policy fuzz/corpus/policy
	mkdir -p $(FUZZ_BUILD)/corpus-http
	$(FUZZ_BUILD)/fuzz/fuzz_http -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		-dict=fuzz/http.dict $(FUZZ_BUILD)/corpus-http fuzz/corpus/http
	mkdir -p $(FUZZ_BUILD)/corpus-ctxframe
	$(FUZZ_BUILD)/fuzz/fuzz_ctxframe -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		$(FUZZ_BUILD)/corpus-ctxframe fuzz/corpus/ctxframe
	mkdir -p $(FUZZ_BUILD)/corpus-proxy
	$(FUZZ_BUILD)/fuzz/fuzz_proxy -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		$(FUZZ_BUILD)/corpus-proxy fuzz/corpus/proxy
	mkdir -p $(FUZZ_BUILD)/corpus-ws
	$(FUZZ_BUILD)/fuzz/fuzz_ws -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		$(FUZZ_BUILD)/corpus-ws fuzz/corpus/ws
	# issue 12: files
	mkdir -p $(FUZZ_BUILD)/corpus-tarx
	$(FUZZ_BUILD)/fuzz/fuzz_tarx -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		$(FUZZ_BUILD)/corpus-tarx fuzz/corpus/tarx
	# issue 13: img-store
	mkdir -p $(FUZZ_BUILD)/corpus-image
	$(FUZZ_BUILD)/fuzz/fuzz_image -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		$(FUZZ_BUILD)/corpus-image fuzz/corpus/image
	# issue 14: mcp
	mkdir -p $(FUZZ_BUILD)/corpus-jsonrpc
	$(FUZZ_BUILD)/fuzz/fuzz_jsonrpc -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		$(FUZZ_BUILD)/corpus-jsonrpc fuzz/corpus/jsonrpc
	# issue 15: vm-guest
	mkdir -p $(FUZZ_BUILD)/corpus-guestproto
	$(FUZZ_BUILD)/fuzz/fuzz_guestproto -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		$(FUZZ_BUILD)/corpus-guestproto fuzz/corpus/guestproto
	# issue 15: vm-gondolin
	mkdir -p $(FUZZ_BUILD)/corpus-gondolin
	$(FUZZ_BUILD)/fuzz/fuzz_gondolin -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		$(FUZZ_BUILD)/corpus-gondolin fuzz/corpus/gondolin
	# issue 16: rt-config
	mkdir -p $(FUZZ_BUILD)/corpus-ociconfig
	$(FUZZ_BUILD)/fuzz/fuzz_ociconfig -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		$(FUZZ_BUILD)/corpus-ociconfig fuzz/corpus/ociconfig

check: unit asan integration security fuzz microvm

# issue 15: vm-guest — the micro-VM's kernel and initramfs (build/guest/, from Debian packages
# cached in /var/cache/agentd-guest), and the guest agent's tests under TCG
guest: build
	ninja -C $(BUILD) guest

microvm: guest
	AGENTD_BUILD=$(abspath $(BUILD)) $(PYTEST) -q tests/microvm

bench: build
	bash bench/spawn.sh $(BUILD)

# issue 14: sdk-ts — the binary, its serve module, libagentd with headers and agentd.pc,
# the systemd unit, the man page, the docs and the clients, under PREFIX (staged in DESTDIR)
PREFIX ?= /usr/local
install: deps $(BUILD)/build.ninja
	meson configure $(BUILD) -Dprefix=$(PREFIX)
	ninja -C $(BUILD)
	meson install -C $(BUILD) --no-rebuild $(if $(DESTDIR),--destdir $(abspath $(DESTDIR)))

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
