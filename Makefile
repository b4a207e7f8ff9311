# Grapevine: one non-recursive Makefile. See README.md.
#
#   make            build the binaries into build/
#   make test       build and run every test (installs missing packages)
#   make run        the main job (installs missing packages)
#   make asan       ASan + UBSan build, then its tests
#   make fuzz       libFuzzer, FUZZ_SECONDS per target (clang)
#   make bench      benchmarks, our figures beside raw libsodium
#   make install    PREFIX=/usr/local
#   make clean

PREFIX    ?= /usr/local
BUILD     ?= build
CC        ?= cc
FUZZ_SECONDS ?= 30
PKGS      := libsodium libuv libcjson sqlite3 libmicrohttpd libcurl libxxhash
TEST_PKGS := check

# Recursively expanded on purpose: pkg-config runs after deps are installed.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lm -lutil
CHECK_LIBS = $(shell pkg-config --libs $(TEST_PKGS))

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Werror
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c17 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) \
             -Iproto -Icommon -Inode $(PKG_CFLAGS) -MMD -MP
LDFLAGS ?=

PROTO_SRC := proto/err.c proto/identity.c proto/frame.c proto/handshake.c \
             proto/json.c \
             proto/link.c proto/addr.c proto/msg.c proto/chan.c \
             proto/relaywire.c proto/torwire.c
# The pure cores (no I/O): linked by the node, the simulator and the tests.
CORE_SRC  := node/engine.c node/guard.c node/lcore.c node/actq.c node/oom.c common/idmap.c common/intern.c node/ctl.c \
             node/relay.c node/relayaddr.c node/relayreq.c node/mcp.c node/wrap.c \
             node/tun.c
# The adapters' helpers shared by the node and the tracker (common/).
COMMON_SRC := common/sockaddr.c common/log.c common/conn.c common/fsutil.c
# The node's adapters (everything of the grapevine binary but main.c).
NODE_SRC  := node/cli.c node/demo.c node/daemon.c node/ctlcli.c \
             node/db.c node/store.c node/config.c node/metrics.c \
             node/trkclient.c node/links.c node/ctlsrv.c node/trkjobs.c \
             node/nodemetrics.c node/agentsrv.c node/team.c node/relaycli.c \
             node/relaystore.c node/aclient.c node/mcpcli.c
# The torrent service and its commands (issue 11): they link libtorrent.
NODE_SRC  += node/torsvc.c node/torcli.c
# grapevine wrap (issue 10 §2): the adapter; forkpty needs -lutil.
NODE_SRC  += node/wrapcli.c
# The torrent tunnel's local sockets (issue 11, node/tunio.h).
NODE_SRC  += node/tunio.c
TEST_NAMES := err identity frame handshake link msg idmap intern engine lcore store \
              config metrics ctl common db relaywire relayreq relay \
              agentsrv team relaystore aclient mcp wrap cli guard \
              torwire tun
TEST_NAMES += tunio fsutil
BENCH_SRC := tests/bench/bench_proto.c
FUZZ_NAMES := frame msg handshake ctl config lcore relaywire relayreq relayaddr \
              relay mcp wrap guard torwire

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
PROTO_OBJ := $(call obj,$(PROTO_SRC))
CORE_OBJ  := $(call obj,$(CORE_SRC))
NODE_OBJ  := $(call obj,$(NODE_SRC))
COMMON_OBJ := $(call obj,$(COMMON_SRC))
BINS      := $(BUILD)/grapevine

# Each module beyond proto/ and node/ adds its sources, binaries, tests and
# packages in its own fragment: <module>/module.mk may append to BINS,
# TEST_NAMES, FUZZ_NAMES, BENCH_BINS, PKGS and TEST_PKGS, and add rules.
.DEFAULT_GOAL := all # module fragments below define rules of their own
BENCH_BINS := $(BUILD)/bench/bench_proto $(BUILD)/bench/bench_store \
              $(BUILD)/bench/bench_db $(BUILD)/bench/bench_rstore \
              tests/bench/bench_node.sh tests/bench/bench_relay.sh \
              tests/bench/bench_wrap.sh \
              tests/bench/bench_mcp.sh $(BUILD)/bench/bench_tun
BENCH_BINS += $(BUILD)/bench/bench_tunnel
# Packages only the benchmarks link (the relay bench's MQTT anchor client).
BENCH_PKGS := libmosquitto
include $(wildcard */module.mk)

TEST_BINS = $(addprefix $(BUILD)/tests/check_,$(TEST_NAMES))

.PHONY: all test hostile run asan fuzz bench install clean deps check-deps \
        test-bins vectors
all: $(BINS)

# Installs missing Debian packages only when pkg-config cannot find one.
deps:
	@pkg-config --exists $(PKGS) $(TEST_PKGS) $(BENCH_PKGS) $(TOR_PKGS) 2>/dev/null || \
	  scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libgvproto.a: $(PROTO_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libgvcore.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libgvcommon.a: $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libgvnode.a: $(NODE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/grapevine: $(call obj,node/main.c) $(BUILD)/libgvnode.a \
                    $(BUILD)/libgvcommon.a $(BUILD)/libgvcore.a \
                    $(BUILD)/libgvproto.a $(TOR_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(TOR_LIBS)

$(BUILD)/tests/check_%: $(BUILD)/obj/tests/check_%.o \
                        $(BUILD)/obj/tests/testutil.o $(BUILD)/libgvnode.a \
                        $(BUILD)/libgvcommon.a $(BUILD)/libgvcore.a \
                        $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS)

$(BUILD)/tests/gen_vectors: $(BUILD)/obj/tests/gen_vectors.o \
                            $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bench/bench_proto: $(call obj,$(BENCH_SRC)) $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bench/gossip_load: $(call obj,tests/bench/gossip_load.c) \
    $(BUILD)/libgvnode.a $(BUILD)/libgvcommon.a $(BUILD)/libgvcore.a \
    $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bench/bench_store: $(call obj,tests/bench/bench_store.c) \
    $(BUILD)/libgvnode.a $(BUILD)/libgvcommon.a $(BUILD)/libgvcore.a \
    $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bench/bench_db: $(call obj,tests/bench/bench_db.c) \
    $(BUILD)/libgvnode.a $(BUILD)/libgvcore.a $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bench/bench_tun: $(call obj,tests/bench/bench_tun.c) \
    $(BUILD)/libgvcore.a $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bench/bench_relay: $(call obj,tests/bench/bench_relay.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs $(BENCH_PKGS))

$(BUILD)/bench/bench_rstore: $(call obj,tests/bench/bench_rstore.c) \
    $(BUILD)/libgvnode.a $(BUILD)/libgvcommon.a $(BUILD)/libgvcore.a \
    $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The tunnel's in-process links and local peers (tests/tunlab.h), shared by
# its test and its benchmark.
$(BUILD)/tests/check_tunio: $(BUILD)/obj/tests/check_tunio.o \
    $(BUILD)/obj/tests/tunlab.o $(BUILD)/obj/tests/testutil.o \
    $(BUILD)/libgvnode.a $(BUILD)/libgvcommon.a $(BUILD)/libgvcore.a \
    $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS)
$(BUILD)/bench/bench_tunnel: $(call obj,tests/bench/bench_tunnel.c) \
    $(BUILD)/obj/tests/tunlab.o $(BUILD)/libgvnode.a $(BUILD)/libgvcommon.a \
    $(BUILD)/libgvcore.a $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

test-bins: $(BINS) $(addprefix $(BUILD)/tests/check_,$(TEST_NAMES)) \
           $(BUILD)/tests/gen_vectors $(BUILD)/tests/link_peer

# Throw-away identities that take a node's inbound links, for
# tests/integration/test_links.sh.
$(BUILD)/tests/link_peer: $(call obj,tests/link_peer.c) \
                          $(BUILD)/libgvcommon.a $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# A helper for tests/integration/test_adapter.sh: says goodbye to a node.
test-bins: $(BUILD)/tests/link_probe
$(BUILD)/tests/link_probe: $(call obj,tests/link_probe.c) $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# An outsider's forged relay packets, for tests/integration/test_relay.sh.
test-bins: $(BUILD)/tests/relay_forge
$(BUILD)/tests/relay_forge: $(call obj,tests/relay_forge.c) $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

test: deps
	@$(MAKE) --no-print-directory test-bins
	@BUILD=$(BUILD) tests/run.sh

# The hostile suite at full size (every `make test` runs it small).
hostile: deps
	@$(MAKE) --no-print-directory test-bins
	@BUILD=$(BUILD) HOSTILE_ONLY=1 HOSTILE_SIZE=full tests/run.sh

run: deps
	@$(MAKE) --no-print-directory $(BINS)
	@BUILD=$(BUILD) scripts/localnet.sh

# The sanitizer build lives in its own tree so it never mixes objects. It is
# also the debug build: GV_DEBUG checks the cores' invariants after every
# event (node/invariant.h).
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	  EXTRA_CFLAGS="-DGV_DEBUG -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" test-bins
	@BUILD=build-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1 tests/run.sh

FUZZ_FLAGS = -std=c17 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined \
             -fno-sanitize-recover=undefined -Iproto -Icommon $(PKG_CFLAGS)
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(PROTO_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_msg: tests/fuzz/fuzz_msg.c $(PROTO_SRC) common/intern.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_ctl: tests/fuzz/fuzz_ctl.c $(PROTO_SRC) node/ctl.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -Inode -o $@ $^ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_relayaddr: tests/fuzz/fuzz_relayaddr.c $(PROTO_SRC) \
    node/relayaddr.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -Inode -o $@ $^ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_relayreq: tests/fuzz/fuzz_relayreq.c $(PROTO_SRC) \
    node/relayaddr.c node/relayreq.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -Inode -o $@ $^ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_lcore: tests/fuzz/fuzz_lcore.c $(PROTO_SRC) \
    node/engine.c node/guard.c node/lcore.c node/actq.c node/oom.c common/idmap.c \
    common/intern.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -DGV_DEBUG -Inode -Icommon -o $@ $^ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_relay: tests/fuzz/fuzz_relay.c $(PROTO_SRC) node/relay.c \
    node/relayaddr.c node/relayreq.c node/oom.c common/idmap.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -DGV_DEBUG -Inode -Icommon -o $@ $^ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_mcp: tests/fuzz/fuzz_mcp.c $(PROTO_SRC) node/mcp.c \
    common/idmap.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -Inode -o $@ $^ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_wrap: tests/fuzz/fuzz_wrap.c $(PROTO_SRC) node/wrap.c \
    node/relayaddr.c node/oom.c common/idmap.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -DGV_DEBUG -Inode -o $@ $^ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_config: tests/fuzz/fuzz_config.c $(PROTO_SRC) node/config.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -Inode -o $@ $^ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_guard: tests/fuzz/fuzz_guard.c $(PROTO_SRC) node/guard.c \
    node/oom.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -Inode -o $@ $^ $(PKG_LIBS)

fuzz:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory $(addprefix $(BUILD)/fuzz/fuzz_,$(FUZZ_NAMES))
	@FUZZ_SECONDS=$(FUZZ_SECONDS) BUILD=$(BUILD) tests/fuzz/run.sh $(FUZZ_NAMES)

bench: deps
	@$(MAKE) --no-print-directory $(filter-out %.sh,$(BENCH_BINS)) \
	  $(BINS) $(BUILD)/bench/gossip_load $(BUILD)/bench/bench_relay
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done

# Regenerates the worked examples in docs/PROTOCOL.md.
vectors: $(BUILD)/tests/gen_vectors
	$(BUILD)/tests/gen_vectors --markdown > $(BUILD)/vectors.md
	scripts/splice-vectors.sh docs/PROTOCOL.md $(BUILD)/vectors.md

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/systemd/user \
	  $(DESTDIR)$(PREFIX)/share/doc/grapevine
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	sed 's|/usr/local/bin|$(PREFIX)/bin|' dist/grapevine.service \
	  > $(DESTDIR)$(PREFIX)/lib/systemd/user/grapevine.service
	install -m 0644 docs/*.md $(wildcard dist/*.example) \
	  $(DESTDIR)$(PREFIX)/share/doc/grapevine/

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
