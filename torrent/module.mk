# The torrent wrapper (issue 11): torrent/tor.cpp, C++17 over
# libtorrent-rasterbar behind the C API of torrent/tor.h. Its tests, fuzz
# target and benchmark. Included by the top-level Makefile.

# Only the wrapper and what links it see libtorrent: the grapevine binary
# (node/torsvc.c, node/torcli.c; see its rule in the Makefile), tor_peer,
# check_tor and the fuzz targets. The tracker, the simulator and the other
# unit tests do not link it.
TOR_PKGS   := libtorrent-rasterbar
TOR_CFLAGS  = $(shell pkg-config --cflags $(TOR_PKGS))

CXX      ?= c++
# C++ is slow to compile on our shared 2-core machines: one translation unit
# for the wrapper, one for the benchmark's bare libtorrent anchor.
ALL_CXXFLAGS = -std=c++17 -D_GNU_SOURCE -Wall -Wextra -Werror $(CFLAGS) \
               $(EXTRA_CFLAGS) -Iproto -Icommon $(PKG_CFLAGS) $(TOR_CFLAGS) \
               -MMD -MP
# Programs holding C++ objects are linked by $(CC): they need libstdc++.
TOR_LIBS  = $(shell pkg-config --libs $(TOR_PKGS)) -lstdc++
TOR_OBJ  := $(BUILD)/obj/torrent/tor.o

$(BUILD)/obj/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(ALL_CXXFLAGS) -c $< -o $@

TEST_NAMES += tor
FUZZ_NAMES += tor_target tor_paths

$(BUILD)/tests/check_tor: $(BUILD)/obj/tests/check_tor.o \
    $(BUILD)/obj/tests/testutil.o $(TOR_OBJ) $(BUILD)/libgvcommon.a \
    $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS) $(TOR_LIBS)

# A seeder or fetcher process for the integration tests and the benchmark:
# the gv_tor API driven from a libuv loop, as the node will drive it.
test-bins: $(BUILD)/tests/tor_peer
$(BUILD)/tests/tor_peer: $(call obj,tests/tor_peer.c) $(TOR_OBJ) \
    $(BUILD)/libgvcommon.a $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(TOR_LIBS)

# libFuzzer: the wrapper is rebuilt with clang++ and the sanitizers, and
# clang++ links (UBSan's C++ runtime); the C sources are compiled as C.
$(BUILD)/fuzz/tor/tor.o: torrent/tor.cpp torrent/tor.h common/fsutil.h
	@mkdir -p $(dir $@)
	clang++ -std=c++17 -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
	  -fno-sanitize-recover=undefined -Iproto -Icommon $(PKG_CFLAGS) $(TOR_CFLAGS) \
	  -c $< -o $@
$(BUILD)/fuzz/fuzz_tor_%: tests/fuzz/fuzz_tor_%.c $(BUILD)/fuzz/tor/tor.o \
    $(PROTO_SRC) common/fsutil.c
	clang++ $(FUZZ_FLAGS) -Itorrent -Icommon -o $@ -x c $< $(PROTO_SRC) \
	  common/fsutil.c \
	  -x none $(BUILD)/fuzz/tor/tor.o $(PKG_LIBS) $(TOR_LIBS)

# The benchmark: tests/bench/bench_torrent.sh runs the bare libtorrent pair
# (tor_bare, the anchor), tor_peer and two grapevine nodes (share + fetch)
# through the same transfer.
BENCH_BINS += $(BUILD)/bench/bench_torrent
$(BUILD)/bench/tor_bare: tests/bench/tor_bare.cpp
	@mkdir -p $(dir $@) $(BUILD)/obj/tests/bench
	$(CXX) $(ALL_CXXFLAGS) -c $< -o $(BUILD)/obj/tests/bench/tor_bare.o
	$(CXX) $(LDFLAGS) -o $@ $(BUILD)/obj/tests/bench/tor_bare.o $(TOR_LIBS)

$(BUILD)/bench/bench_torrent: tests/bench/bench_torrent.sh \
    $(BUILD)/bench/tor_bare $(BUILD)/tests/tor_peer $(BUILD)/grapevine
	@mkdir -p $(dir $@)
	printf '#!/bin/sh\nexec "%s/tests/bench/bench_torrent.sh" "%s" "$$@"\n' \
	  "$(CURDIR)" "$(abspath $(BUILD))" > $@
	chmod +x $@
