# The simulator: grapevine-sim (the real engine over a virtual network) and
# sim-baseline (the bare event loop it is measured against).
SIM_SRC := sim/main.c sim/net.c sim/relaysim.c sim/harvest.c sim/simout.c \
           sim/attack.c sim/boot.c sim/turnover.c sim/steady.c
BINS += $(BUILD)/grapevine-sim $(BUILD)/sim-baseline
BENCH_BINS += tests/bench/bench_sim.sh

$(BUILD)/grapevine-sim: $(call obj,$(SIM_SRC)) $(BUILD)/libgvcore.a \
                        $(BUILD)/libgvproto.a
	$(CC) $(LDFLAGS) -pthread -o $@ $^ $(PKG_LIBS)

$(BUILD)/sim-baseline: $(call obj,sim/baseline.c)
	$(CC) $(LDFLAGS) -o $@ $^

# tests/check_sim plants leaks in the virtual network (sim/net.c), so it
# links the simulator's objects: an explicit rule, as the generic check_%
# one has none.
TEST_NAMES += sim
$(BUILD)/tests/check_sim: $(BUILD)/obj/tests/check_sim.o \
    $(BUILD)/obj/tests/testutil.o $(call obj,sim/net.c sim/simout.c) \
    $(BUILD)/libgvcore.a $(BUILD)/libgvcommon.a $(BUILD)/libgvproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -pthread -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS)
