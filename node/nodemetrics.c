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

/* The relay's series: messages by state, failures and refusals by reason,
 * BUSY, forwarding, queue depths, and the latency histograms from accepted
 * to stored and to delivered. */
static size_t relay_text(const gv_relay *r, char *buf, size_t cap) {
  static const char *const hist[2][2] = {
      {"grapevine_relay_stored_seconds",
       "From accepted to stored at the destination (end-to-end ack)."},
      {"grapevine_relay_delivered_seconds",
       "From accepted to delivered to the recipient agent."}};
  gv_relay_stats st;
  size_t off = 0;

  gv_relay_stats_get(r, &st);
#define OUT(...)                                                               \
  off += (size_t)snprintf(buf + off, off < cap ? cap - off : 0, __VA_ARGS__)
  OUT("# HELP grapevine_relay_messages Outbox messages now, by state.\n"
      "# TYPE grapevine_relay_messages gauge\n");
  for (int i = GV_RSTATE_ACCEPTED; i <= GV_RSTATE_FAILED; i++)
    OUT("grapevine_relay_messages{state=\"%s\"} %llu\n",
        gv_rstate_name((gv_rstate)i), (unsigned long long)st.by_state[i]);
  OUT("# HELP grapevine_relay_failed_total Messages of ours that failed.\n"
      "# TYPE grapevine_relay_failed_total counter\n");
  for (int i = GV_RFAIL_EXPIRED; i <= GV_RFAIL_NOT_IN_TEAM; i++)
    OUT("grapevine_relay_failed_total{reason=\"%s\"} %llu\n",
        gv_rfail_name((gv_rfail)i), (unsigned long long)st.failed[i]);
  OUT("# HELP grapevine_relay_refused_total Relay packets refused here.\n"
      "# TYPE grapevine_relay_refused_total counter\n");
  for (int i = GV_RFAIL_EXPIRED; i <= GV_RFAIL_NOT_IN_TEAM; i++)
    OUT("grapevine_relay_refused_total{reason=\"%s\"} %llu\n",
        gv_rfail_name((gv_rfail)i), (unsigned long long)st.refused_in[i]);
  OUT("# TYPE grapevine_relay_busy_total counter\n"
      "grapevine_relay_busy_total{dir=\"sent\"} %llu\n"
      "grapevine_relay_busy_total{dir=\"received\"} %llu\n"
      "# TYPE grapevine_relay_forwarded_total counter\n"
      "grapevine_relay_forwarded_total %llu\n"
      "# TYPE grapevine_relay_forward_dropped_total counter\n"
      "grapevine_relay_forward_dropped_total %llu\n"
      "# HELP grapevine_relay_queue Messages and bytes held.\n"
      "# TYPE grapevine_relay_queue gauge\n"
      "grapevine_relay_queue{queue=\"outbox\"} %llu\n"
      "grapevine_relay_queue{queue=\"inbox\"} %llu\n"
      "grapevine_relay_queue_bytes{queue=\"outbox\"} %llu\n"
      "grapevine_relay_queue_bytes{queue=\"inbox\"} %llu\n"
      "# TYPE grapevine_relay_agents_online gauge\n"
      "grapevine_relay_agents_online %llu\n",
      (unsigned long long)st.busy_sent, (unsigned long long)st.busy_received,
      (unsigned long long)st.forwarded, (unsigned long long)st.forward_dropped,
      (unsigned long long)st.outbox, (unsigned long long)st.inbox,
      (unsigned long long)st.outbox_bytes, (unsigned long long)st.inbox_bytes,
      (unsigned long long)st.agents_online);
  for (int h = 0; h < 2; h++) {
    const uint64_t *b = h == 0 ? st.lat_stored : st.lat_delivered;
    uint64_t cum = 0;
    OUT("# HELP %s %s\n# TYPE %s histogram\n", hist[h][0], hist[h][1],
        hist[h][0]);
    for (int i = 0; i < GV_RELAY_LAT_BUCKETS; i++) {
      cum += b[i];
      if (i == GV_RELAY_LAT_BUCKETS - 1)
        OUT("%s_bucket{le=\"+Inf\"} %llu\n", hist[h][0],
            (unsigned long long)cum);
      else
        OUT("%s_bucket{le=\"%g\"} %llu\n", hist[h][0],
            gv_relay_lat_le[i] / 1000.0, (unsigned long long)cum);
    }
    OUT("%s_sum %.6f\n%s_count %llu\n", hist[h][0],
        (h == 0 ? st.lat_stored_sum : st.lat_delivered_sum) / 1000.0,
        hist[h][0], (unsigned long long)cum);
  }
#undef OUT
  return off;
}

int gv_nodemetrics_render(const gv_engine *e, const gv_lcore *lc,
                          const gv_relay *relay, int64_t uptime_s, char **out,
                          size_t *len) {
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
  if (relay != NULL)
    off += relay_text(relay, buf + off, off < cap ? cap - off : 0);
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
