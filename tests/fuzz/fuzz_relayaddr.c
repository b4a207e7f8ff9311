/* Fuzz target: relay agent names and addresses (node/relayaddr.c), and
 * the resolution of every accepted address against a fixed directory. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "relayaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Two nodes share their short form, so short NODEs can be ambiguous. */
static const struct {
  uint8_t node0, node7;
  const char *project, *name;
} seed_dir[] = {
    {0xaa, 0, "web", "Bob"},   {0xbb, 0, "api", "Bob"},
    {0xaa, 0, "web", "Alice"}, {0xbb, 1, "web", "Carol"},
    {0xbb, 1, "api", "Bob"},   {0x3f, 0, "a", "b"},
};
#define N_DIR (sizeof(seed_dir) / sizeof(seed_dir[0]))

static void make_dir(gv_raddr_ent *dir) {
  memset(dir, 0, N_DIR * sizeof(*dir));
  for (size_t i = 0; i < N_DIR; i++) {
    memset(dir[i].node, seed_dir[i].node0, GV_RADDR_SHORT_BYTES);
    dir[i].node[7] = seed_dir[i].node7;
    strcpy(dir[i].agent.project, seed_dir[i].project);
    strcpy(dir[i].agent.name, seed_dir[i].name);
    dir[i].online = i % 2 == 0;
  }
}

static void check_part(const char *s, bool empty_ok) {
  size_t len = strlen(s);
  FZ_CHECK(len <= GV_RADDR_PART_MAX);
  FZ_CHECK(empty_ok ? len == 0 || gv_raddr_part_check(s, len, "p", NULL) == 0
                    : gv_raddr_part_check(s, len, "p", NULL) == 0);
}

static void check_resolve(const gv_raddr *a) {
  gv_raddr_ent dir[N_DIR];
  size_t out[N_DIR], found = 99, cmp;
  gv_why why;
  int rc;
  bool fanout = a->kind != GV_RADDR_ONE;

  make_dir(dir);
  why.text[0] = '\0';
  rc = gv_raddr_resolve(a, dir, N_DIR, &dir[0], out, N_DIR, &found, &why);
  FZ_CHECK(rc == 0 || rc == GV_EUNKNOWN_RECIPIENT || rc == GV_EAMBIGUOUS);
  FZ_CHECK(found <= N_DIR);
  FZ_CHECK((rc == GV_EUNKNOWN_RECIPIENT) == (found == 0));
  FZ_CHECK(rc != GV_EAMBIGUOUS || !fanout);
  FZ_CHECK(rc == 0 ? fanout || found == 1 : why.text[0] != '\0');
  cmp = a->node_kind == GV_RADDR_NODE_FULL    ? GV_ID_BYTES
        : a->node_kind == GV_RADDR_NODE_SHORT ? GV_RADDR_SHORT_BYTES
                                              : 0;
  for (size_t i = 0; i < found; i++) {
    const gv_raddr_ent *e = &dir[out[i]];
    FZ_CHECK(out[i] < N_DIR && (i == 0 || out[i] > out[i - 1]));
    FZ_CHECK(a->project[0] == '\0' ||
             strcmp(a->project, e->agent.project) == 0);
    FZ_CHECK(a->name[0] == '\0' || strcmp(a->name, e->agent.name) == 0);
    FZ_CHECK(memcmp(a->node, e->node, cmp) == 0);
    FZ_CHECK(!fanout || !gv_raddr_same(e, &dir[0]));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  char text[GV_RADDR_TEXT_MAX + 1];
  const char *at;
  gv_raddr a, b;
  gv_raddr_name n;
  gv_why why;
  size_t len;

  why.text[0] = '\0';
  if (gv_raddr_name_parse(&n, s, size, &why) == 0) {
    check_part(n.project, false);
    check_part(n.name, false);
    FZ_CHECK(strlen(n.project) + 1 + strlen(n.name) == size);
    FZ_CHECK(memcmp(s, n.project, strlen(n.project)) == 0);
  } else {
    FZ_CHECK(why.text[0] != '\0');
  }

  why.text[0] = '\0';
  if (gv_raddr_parse(&a, s, size, &why) < 0) {
    FZ_CHECK(why.text[0] != '\0'); /* every rejection has a reason */
    return 0;
  }
  check_part(a.project, true);
  check_part(a.name, true);
  switch (a.kind) {
  case GV_RADDR_ONE: FZ_CHECK(a.name[0] != '\0'); break;
  case GV_RADDR_ALL: FZ_CHECK(!a.project[0] && !a.name[0]); break;
  case GV_RADDR_PROJECT: FZ_CHECK(a.project[0] && !a.name[0]); break;
  case GV_RADDR_EVERY_NAME: FZ_CHECK(!a.project[0] && a.name[0]); break;
  default: FZ_CHECK(0);
  }
  FZ_CHECK(a.kind == GV_RADDR_ONE || a.node_kind == GV_RADDR_NODE_ANY);
  /* One spelling per address, but for the case of the hex digits. */
  len = gv_raddr_format(&a, text);
  FZ_CHECK(len == size);
  at = memchr(text, '@', len);
  len = at != NULL ? (size_t)(at - text) : size;
  FZ_CHECK(memcmp(text, s, len) == 0);
  FZ_CHECK(strncasecmp(text + len, s + len, size - len) == 0);
  len = size;
  FZ_CHECK(gv_raddr_parse(&b, text, len, NULL) == 0);
  FZ_CHECK(memcmp(&a, &b, sizeof(a)) == 0);
  check_resolve(&a);
  return 0;
}
