#include "nodemetrics.h"

#include <stdio.h>
#include <stdlib.h>

int gv_nodemetrics_render(const gv_engine *e, int64_t uptime_s, char **out,
                          size_t *len) {
  const gv_engine_stats *st = gv_engine_stats_get(e);
  size_t cap = 16384, off = 0, connected = 0, total = 0;
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
      gv_engine_link_count(e));
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
      (unsigned long long)st->bans, (unsigned long long)st->rejected,
      (unsigned long long)st->bytes_in, (unsigned long long)st->bytes_out,
      (long long)uptime_s);
#undef OUT
  *out = buf;
  *len = off < cap ? off : cap - 1;
  return 0;
}
