/* Strict JSON on top of cJSON, for bytes from the network or a user. */
#ifndef GV_JSON_H
#define GV_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* No object may hold more members: it bounds the duplicate check, and no
 * message of ours comes close. */
#define GV_JSON_MAX_MEMBERS 64

/* Parses exactly text[0..len) as one JSON value: trailing bytes other than
 * white space, a NUL byte or a \u0000 escape (cJSON would truncate the
 * string there) are errors. Returns NULL and the failing offset in *at. */
cJSON *gv_json_parse_exact(const char *text, size_t len, size_t *at);

/* The offset of the first byte of text[0..len) that is not RFC 3629 UTF-8
 * (overlong forms, surrogates and code points past U+10FFFF included), or
 * len if all of it is. */
size_t gv_json_utf8_bad_at(const char *text, size_t len);

/* The whole strict layer for a request from outside: text[0..len) must be
 * UTF-8 and exactly one JSON value (as gv_json_parse_exact) whose objects
 * pass gv_json_check_members. 0 and the tree in *out (the caller frees it
 * with cJSON_Delete), or GV_EJSON (not UTF-8, NUL byte, \u0000, trailing
 * bytes, not JSON), GV_EFIELD or GV_ELIMIT with a reason naming the byte
 * offset, and *out NULL. */
int gv_json_parse_strict(cJSON **out, const char *text, size_t len,
                         gv_why *why);

/* Refuses a member name repeated in any object of the tree (parsers
 * disagree on which wins) and objects over GV_JSON_MAX_MEMBERS. 0,
 * GV_EFIELD or GV_ELIMIT with a reason. */
int gv_json_check_members(const cJSON *v, gv_why *why);

/* ---- the canonical form, read without a tree ----
 *
 * What our encoders write (no white space, members in a fixed order,
 * strings of printable ASCII) can be read without building a cJSON tree.
 * gv_json_scan() recognizes exactly that form and nothing else: when it
 * says yes, the strict parse (gv_json_parse_exact, gv_json_check_members)
 * would have accepted the text, and the field readers would have returned
 * the same values; when it says no, the text is merely not in this form,
 * and the full parser must judge it. */

typedef enum gv_json_kind {
  GV_JSON_UINT, /* at most 15 digits (below 2^53), no leading zero */
  GV_JSON_STR,  /* printable ASCII; the only escapes are \" and \\ */
  GV_JSON_OBJ,  /* an object, as text for another scan; last member only */
} gv_json_kind;

typedef struct gv_json_tok {
  gv_json_kind kind; /* asked for by the caller */
  uint64_t num;      /* UINT */
  const char *s;     /* STR: unescaped, NUL-terminated (in buf); OBJ: text */
  size_t len;        /* bytes of s, without the NUL */
} gv_json_tok;

/* True if text[0..len) is exactly {"keys[0]":v0,...} with the n keys in
 * that order and each value of toks[i].kind, filling toks; strings are
 * unescaped into buf (cap bytes; too small is a no), *used receives the
 * bytes taken. Keys must be plain (no '"' or '\\'). */
bool gv_json_scan(const char *text, size_t len, const char *const *keys,
                  gv_json_tok *toks, size_t n, char *buf, size_t cap,
                  size_t *used);

/* Field readers: 0, or GV_EFIELD (missing, wrong type) / GV_ERANGE with a
 * reason naming the field. */
/* obj's member named key (the first, as cJSON_GetObjectItemCaseSensitive
 * finds it), or NULL; NULL too when obj is not an object. */
const cJSON *gv_json_get(const cJSON *obj, const char *key);
int gv_json_uint(const cJSON *obj, const char *key, uint64_t min, uint64_t max,
                 uint64_t *out, gv_why *why);
/* *s is the string member (NUL-terminated), *len its length in bytes. */
int gv_json_str(const cJSON *obj, const char *key, const char **s, size_t *len,
                gv_why *why);
int gv_json_bool(const cJSON *obj, const char *key, bool *out, gv_why *why);
/* Exactly n bytes from exactly 2n hex digits (either case), as
 * sodium_hex2bin accepts them: 0, or GV_EFIELD with out undefined. Not
 * constant-time: for public data only (ids, signatures). */
int gv_hex_decode(uint8_t *out, size_t n, const char *s, size_t len);
/* 2n lowercase hex digits and a NUL into out (2n + 1 bytes). */
void gv_hex_encode(char *out, const uint8_t *bin, size_t n);
int gv_json_hex(const cJSON *obj, const char *key, uint8_t *out, size_t n,
                gv_why *why);
/* An array member of at most max elements; *n its size. */
int gv_json_array(const cJSON *obj, const char *key, int max, const cJSON **arr,
                  int *n, gv_why *why);

#endif
