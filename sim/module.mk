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
