# The bootstrap tracker: grapevine-tracker, its tests, fuzz target and
# benchmark. Included by the top-level Makefile.

PKGS += libmicrohttpd libcurl

# Sans-I/O cores (unit-tested, fuzzed) and the adapters around them.
TRK_CORE_SRC := tracker/map.c tracker/rng.c tracker/registry.c \
                tracker/replay.c tracker/bucket.c tracker/req.c \
                tracker/fair.c
TRK_SRC      := $(TRK_CORE_SRC) tracker/metrics.c \
                tracker/store.c tracker/dialback.c tracker/http.c \
                tracker/main.c
TRK_CORE_OBJ := $(call obj,$(TRK_CORE_SRC))
TRK_OBJ      := $(call obj,$(TRK_SRC))

BINS       += $(BUILD)/grapevine-tracker
TEST_NAMES += tracker
FUZZ_NAMES += tracker
BENCH_BINS += $(BUILD)/bench/bench_tracker

$(BUILD)/grapevine-tracker: $(TRK_OBJ) $(BUILD)/libgvcommon.a \
                            $(BUILD)/libgvproto.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# An explicit rule, so that the cores come before libgvproto.a on the link
# line (the generic check_% rule would put them after it).
$(BUILD)/tests/check_tracker: $(BUILD)/obj/tests/check_tracker.o \
    $(BUILD)/obj/tests/testutil.o $(TRK_CORE_OBJ) \
    $(call obj,tracker/store.c node/trkclient.c) \
    $(BUILD)/libgvcommon.a $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS)

# Test helpers for tests/integration/test_tracker.sh: a node that accepts
# dial-backs, and a client that registers like a node does.
TRK_HELPERS := $(BUILD)/tests/tracker_peer $(BUILD)/tests/tracker_client
test-bins: $(TRK_HELPERS)

$(BUILD)/tests/tracker_peer: $(call obj,tests/tracker_peer.c) \
                             $(BUILD)/libgvcommon.a $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/tracker_client: $(call obj,tests/tracker_client.c \
                               node/trkclient.c) $(BUILD)/libgvcommon.a \
                               $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_tracker: tests/fuzz/fuzz_tracker.c $(PROTO_SRC) \
                            $(TRK_CORE_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -o $@ $^ $(PKG_LIBS)

# The benchmark is a script; this wrapper pins the tree it measures.
$(BUILD)/bench/bench_tracker: tests/bench/bench_tracker.sh \
    tests/bench/tracker.lua $(BUILD)/grapevine-tracker
	@mkdir -p $(dir $@)
	printf '#!/bin/sh\nexec "%s/tests/bench/bench_tracker.sh" "%s" "$$@"\n' \
	  "$(CURDIR)" "$(abspath $(BUILD))" > $@
	chmod +x $@
