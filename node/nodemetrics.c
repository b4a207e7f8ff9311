#include "nodemetrics.h"

#include <stdio.h>
#include <stdlib.h>

/* The per-link series, labelled by the peer's short id: never an address,
 * which for a silent peer must not leave the node (IP rule 2). */
static size_t links_text(const gv_lcore *lc, char *buf, size_t cap) {
  static const char *const series[][2] = {
      {"grapevine_link_score", "Link score: (availability + performance) / 2 "
                               "- penalty."},
      {"grapevine_link_availability", "Answered PINGs, 0-100."},
      {"grapevine_link_performance", "From the PING round trip, 0-100."},
      {"grapevine_link_rtt_ms", "Smoothed PING round trip; -1 before the "
                                "first PONG."},
  };
  const gv_lcore_stats *st = gv_lcore_stats_get(lc);
  gv_link_info li;
  size_t off = 0;

#define OUT(...)                                                               \
  off += (size_t)snprintf(buf + off, off < cap ? cap - off : 0, __VA_ARGS__)
  OUT("# HELP grapevine_links_opened_total Links whose handshake completed.\n"
      "# TYPE grapevine_links_opened_total counter\n"
      "grapevine_links_opened_total %llu\n",
      (unsigned long long)st->opened);
  OUT("# HELP grapevine_links_closed_total Links closed, by reason.\n"
      "# TYPE grapevine_links_closed_total counter\n");
  for (int k = 0; k < GV__CLOSE_COUNT; k++)
    OUT("grapevine_links_closed_total{reason=\"%s\"} %llu\n",
        gv_close_label((gv_close)k), (unsigned long long)st->closed[k]);
  OUT("# HELP grapevine_channel_messages_in_total Messages received, by "
      "channel.\n# TYPE grapevine_channel_messages_in_total counter\n");
  for (unsigned c = 0; c < GV__CHAN_COUNT; c++)
    OUT("grapevine_channel_messages_in_total{channel=\"%s\"} %llu\n",
        gv_chan_name(c), (unsigned long long)st->msgs_in[c]);
  OUT("# TYPE grapevine_unknown_channel_total counter\n"
      "grapevine_unknown_channel_total %llu\n"
      "# TYPE grapevine_rate_limited_total counter\n"
      "grapevine_rate_limited_total %llu\n",
      (unsigned long long)st->unknown_chan,
      (unsigned long long)st->rate_limited);
  for (size_t s = 0; s < sizeof(series) / sizeof(series[0]); s++) {
    OUT("# HELP %s %s\n# TYPE %s gauge\n", series[s][0], series[s][1],
        series[s][0]);
    for (size_t i = 0; gv_lcore_info(lc, i, &li); i++) {
      char shrt[GV_ID_SHORT_LEN + 1];
      double v = s == 0   ? li.score
                 : s == 1 ? li.availability
                 : s == 2 ? li.performance
                          : li.rtt_ms;
      gv_id_to_short(li.peer, shrt);
      OUT("%s{peer=\"%s\",dir=\"%s\"} %.1f\n", series[s][0], shrt,
          li.dialed ? "out" : "in", v);
    }
  }
#undef OUT
  return off;
}

int gv_nodemetrics_render(const gv_engine *e, const gv_lcore *lc,
                          int64_t uptime_s, char **out, size_t *len) {
  const gv_engine_stats *st = gv_engine_stats_get(e);
  const gv_lcore_stats *ls = gv_lcore_stats_get(lc);
  size_t cap = 16384 + 1024 * gv_lcore_count(lc), off = 0, connected = 0,
         total = 0;
  char *buf = malloc(cap);

  *out = NULL;
  *len = 0;
  if (buf == NULL)
    return GV_ENOMEM;
  for (size_t i = 0;; i++, total++) {
    const gv_peer_entry *p = gv_engine_table_at(e, i);
    if (p == NULL)
      break;
    connected += p->connected;
  }
#define OUT(...)                                                               \
  off += (size_t)snprintf(buf + off, off < cap ? cap - off : 0, __VA_ARGS__)
  OUT("# HELP grapevine_links Links up.\n# TYPE grapevine_links gauge\n"
      "grapevine_links %zu\n",
      gv_lcore_count(lc));
  off += links_text(lc, buf + off, off < cap ? cap - off : 0);
  OUT("# HELP grapevine_peers Peer table entries by state.\n"
      "# TYPE grapevine_peers gauge\ngrapevine_peers{state=\"connected\"} "
      "%zu\ngrapevine_peers{state=\"known\"} %zu\n",
      connected, total - connected);
  OUT("# HELP grapevine_messages_in_total Messages received by type.\n"
      "# TYPE grapevine_messages_in_total counter\n");
  for (int t = 1; t < GV__MSG_COUNT; t++)
    if (st->msgs_in[t])
      OUT("grapevine_messages_in_total{type=\"%s\"} %llu\n",
          gv_msg_type_name((gv_msg_type)t), (unsigned long long)st->msgs_in[t]);
  OUT("# HELP grapevine_messages_out_total Messages sent by type.\n"
      "# TYPE grapevine_messages_out_total counter\n");
  for (int t = 1; t < GV__MSG_COUNT; t++)
    if (st->msgs_out[t])
      OUT("grapevine_messages_out_total{type=\"%s\"} %llu\n",
          gv_msg_type_name((gv_msg_type)t),
          (unsigned long long)st->msgs_out[t]);
  OUT("# TYPE grapevine_dedup_hits_total counter\n"
      "grapevine_dedup_hits_total %llu\n"
      "# TYPE grapevine_repair_pulls_total counter\n"
      "grapevine_repair_pulls_total %llu\n"
      "# TYPE grapevine_bans_total counter\ngrapevine_bans_total %llu\n"
      "# TYPE grapevine_rejected_total counter\n"
      "grapevine_rejected_total %llu\n"
      "# TYPE grapevine_bytes_in_total counter\n"
      "grapevine_bytes_in_total %llu\n"
      "# TYPE grapevine_bytes_out_total counter\n"
      "grapevine_bytes_out_total %llu\n"
      "# TYPE grapevine_uptime_seconds gauge\n"
      "grapevine_uptime_seconds %lld\n",
      (unsigned long long)st->dedup_hits, (unsigned long long)st->pulls_sent,
      (unsigned long long)ls->bans,
      (unsigned long long)(st->rejected + ls->rejected),
      (unsigned long long)st->bytes_in, (unsigned long long)st->bytes_out,
      (long long)uptime_s);
#undef OUT
  *out = buf;
  *len = off < cap ? off : cap - 1;
  return 0;
}
