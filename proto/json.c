/* Strict JSON helpers shared by every parser of untrusted JSON (proto/msg.c,
 * tracker/req.c, node/relayreq.c, node/ctl.c): one definition of "exactly one
 * value", of the refusals the fuzzers forced (NUL, \u0000, repeated member
 * names), and of the field readers with their reasons. Contracts in json.h. */
#include "json.h"

#include <math.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* cJSON strings end at their first NUL, so a NUL byte or a \u0000 escape
 * would silently truncate a value (and let junk ride behind a signed body).
 * Both are refused before parsing. This looks only at escapes: a backslash
 * and the character it escapes are skipped as a pair. */
static size_t find_nul(const char *text, size_t len) {
  /* strnlen and memchr jump to the next NUL and backslash: a message has
   * few of either, and a loop over every byte cost a tenth of a decode. */
  size_t nul = strnlen(text, len), i = 0;
  const char *bs;

  while (i < nul && (bs = memchr(text + i, '\\', nul - i)) != NULL) {
    i = (size_t)(bs - text);
    /* A raw NUL after a backslash is still a raw NUL (fuzz_ctl: it was
     * skipped as if escaped, and "\<NUL>" passed the strict layer). */
    if (i + 1 >= nul)
      break;
    if (text[i + 1] == 'u' && i + 6 <= len &&
        memcmp(text + i + 2, "0000", 4) == 0)
      return i;
    i += 2; /* the backslash and the character it escapes */
  }
  return nul;
}

/* Refuses duplicate member names anywhere in the tree: parsers disagree on
 * which of two equal names wins, and a check passed by the first must not
 * be bypassed by the second. Returns 0, GV_EFIELD or GV_ELIMIT. */
int gv_json_check_members(const cJSON *v, gv_why *why) {
  const cJSON *a, *b;
  int n = 0, rc;

  if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
    return 0;
  for (a = v->child; a != NULL; a = a->next) {
    if (cJSON_IsObject(v)) {
      if (++n > GV_JSON_MAX_MEMBERS)
        return gv_fail(why, GV_ELIMIT, "an object has more than %d members",
                       GV_JSON_MAX_MEMBERS);
      for (b = v->child; b != a; b = b->next)
        if (a->string[0] == b->string[0] && strcmp(a->string, b->string) == 0)
          return gv_fail(why, GV_EFIELD, "member '%.40s' appears twice",
                         a->string);
    }
    if ((rc = gv_json_check_members(a, why)) < 0)
      return rc;
  }
  return 0;
}

/* RFC 3629 UTF-8: no overlong form, no surrogate, nothing past U+10FFFF. */
size_t gv_json_utf8_bad_at(const char *text, size_t len) {
  const unsigned char *s = (const unsigned char *)text;
  size_t i = 0;

  while (i < len) {
    unsigned c = s[i];
    size_t need;
    unsigned lo = 0x80, hi = 0xbf;

    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf)
      need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c == 0xe0)
        lo = 0xa0; /* overlong */
      if (c == 0xed)
        hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c == 0xf0)
        lo = 0x90; /* overlong */
      if (c == 0xf4)
        hi = 0x8f; /* past U+10FFFF */
    } else
      return i;
    if (len - i <= need)
      return i;
    if (s[i + 1] < lo || s[i + 1] > hi)
      return i;
    for (size_t k = 2; k <= need; k++)
      if (s[i + k] < 0x80 || s[i + k] > 0xbf)
        return i;
    i += need + 1;
  }
  return len;
}

/* Why parse_value() refused its text. */
typedef enum { PARSED, BAD_NUL, BAD_U0000, BAD_SYNTAX, BAD_TRAILING } parse_res;

/* Parses exactly text[0..len) as one JSON value; *at is the failing offset,
 * or len once parsed. */
static cJSON *parse_value(const char *text, size_t len, size_t *at,
                          parse_res *res) {
  const char *end = NULL;
  cJSON *v;

  if ((*at = find_nul(text, len)) < len) {
    *res = text[*at] == '\0' ? BAD_NUL : BAD_U0000;
    return NULL;
  }
  v = cJSON_ParseWithLengthOpts(text, len, &end, 0);

  *at = end != NULL && end >= text && end <= text + len ? (size_t)(end - text)
                                                        : 0;
  if (v == NULL) {
    *res = BAD_SYNTAX;
    return NULL;
  }
  while (*at < len && strchr(" \t\r\n", text[*at]) != NULL && text[*at])
    (*at)++;
  if (*at != len) {
    cJSON_Delete(v);
    *res = BAD_TRAILING;
    return NULL;
  }
  *res = PARSED;
  return v;
}

/* Parses exactly text[0..len) as one JSON value: trailing bytes other than
 * white space are an error. Returns NULL and the failing offset in *at. */
cJSON *gv_json_parse_exact(const char *text, size_t len, size_t *at) {
  parse_res res;
  return parse_value(text, len, at, &res);
}

int gv_json_parse_strict(cJSON **out, const char *text, size_t len,
                         gv_why *why) {
  size_t at = gv_json_utf8_bad_at(text, len);
  parse_res res = PARSED;
  int rc;

  *out = NULL;
  if (at < len)
    return gv_fail(why, GV_EJSON, "not UTF-8 at byte %zu", at);
  if ((*out = parse_value(text, len, &at, &res)) == NULL) {
    switch (res) {
    case BAD_NUL: return gv_fail(why, GV_EJSON, "NUL byte at %zu", at);
    case BAD_U0000: return gv_fail(why, GV_EJSON, "\\u0000 at %zu", at);
    case BAD_TRAILING:
      return gv_fail(why, GV_EJSON, "trailing bytes after the JSON at %zu", at);
    default:
      return gv_fail(why, GV_EJSON, "not one JSON value (at byte %zu)", at);
    }
  }
  if ((rc = gv_json_check_members(*out, why)) < 0) {
    cJSON_Delete(*out);
    *out = NULL;
  }
  return rc;
}

const cJSON *gv_json_get(const cJSON *obj, const char *key) {
  const cJSON *it;

  if (!cJSON_IsObject(obj))
    return NULL;
  /* The first byte first: most members differ there, and strcmp was a
   * tenth of a decode. */
  for (it = obj->child; it != NULL; it = it->next)
    if (it->string != NULL && it->string[0] == key[0] &&
        strcmp(it->string, key) == 0)
      return it;
  return NULL;
}

int gv_json_uint(const cJSON *obj, const char *key, uint64_t min, uint64_t max,
                 uint64_t *out, gv_why *why) {
  const cJSON *it = gv_json_get(obj, key);
  double d;

  if (it == NULL)
    return gv_fail(why, GV_EFIELD, "missing field '%s'", key);
  if (!cJSON_IsNumber(it))
    return gv_fail(why, GV_EFIELD, "field '%s' is not a number", key);
  d = it->valuedouble;
  if (!isfinite(d) || d != floor(d))
    return gv_fail(why, GV_EFIELD, "field '%s' is not an integer", key);
  if (d < (double)min || d > (double)max)
    return gv_fail(why, GV_ERANGE, "field '%s' = %.0f is outside %llu..%llu",
                   key, d, (unsigned long long)min, (unsigned long long)max);
  *out = (uint64_t)d;
  return 0;
}

/* A string member; *len is its length in bytes. */
int gv_json_str(const cJSON *obj, const char *key, const char **s, size_t *len,
                gv_why *why) {
  const cJSON *it = gv_json_get(obj, key);

  if (it == NULL)
    return gv_fail(why, GV_EFIELD, "missing field '%s'", key);
  if (!cJSON_IsString(it) || it->valuestring == NULL)
    return gv_fail(why, GV_EFIELD, "field '%s' is not a string", key);
  *s = it->valuestring;
  *len = strlen(it->valuestring);
  return 0;
}

int gv_json_bool(const cJSON *obj, const char *key, bool *out, gv_why *why) {
  const cJSON *it = gv_json_get(obj, key);

  if (it == NULL)
    return gv_fail(why, GV_EFIELD, "missing field '%s'", key);
  if (!cJSON_IsBool(it))
    return gv_fail(why, GV_EFIELD, "field '%s' is not a boolean", key);
  *out = cJSON_IsTrue(it);
  return 0;
}

/* A hex digit's value plus one; 0: not a digit. sodium_hex2bin's loop
 * of masks was 7% of a simulator run. */
static const uint8_t hex_val[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,
    ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
    ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12,
    ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

int gv_hex_decode(uint8_t *out, size_t n, const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  bool bad = false;
  size_t i = 0;

  if (len != 2 * n)
    return GV_EFIELD;
#ifdef __SSE2__
  /* Sixteen digits (eight bytes) at a time: each digit's value from the
   * range it is in ('0'-'9', 'a'-'f', 'A'-'F'; a byte past 0x7f is
   * negative, so in none), then each pair's two values into a byte. A
   * signature (128 digits) took 1,200 instructions a byte at a time. */
  for (; n - i >= 8; i += 8) {
    const __m128i x = _mm_loadu_si128((const void *)(p + 2 * i));
#define GV_IN(lo, hi)                                                          \
  _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8((lo)-1)),                      \
                _mm_cmplt_epi8(x, _mm_set1_epi8((hi) + 1)))
    const __m128i dig = GV_IN('0', '9'), low = GV_IN('a', 'f'),
                  up = GV_IN('A', 'F');
#undef GV_IN
    const __m128i v = _mm_or_si128(
        _mm_or_si128(
            _mm_and_si128(dig, _mm_sub_epi8(x, _mm_set1_epi8('0'))),
            _mm_and_si128(low, _mm_sub_epi8(x, _mm_set1_epi8('a' - 10)))),
        _mm_and_si128(up, _mm_sub_epi8(x, _mm_set1_epi8('A' - 10))));
    /* a pair is one 16-bit lane: the first digit low, the second high */
    const __m128i b =
        _mm_or_si128(_mm_slli_epi16(_mm_and_si128(v, _mm_set1_epi16(0xff)), 4),
                     _mm_srli_epi16(v, 8));
    bad |=
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(dig, low), up)) != 0xffff;
    _mm_storel_epi64((void *)(out + i), _mm_packus_epi16(b, b));
  }
#endif
  for (; i < n; i++) {
    unsigned hi = hex_val[p[2 * i]], lo = hex_val[p[2 * i + 1]];
    bad |= hi == 0 || lo == 0;
    out[i] = (uint8_t)((hi - 1) << 4 | ((lo - 1) & 15));
  }
  return bad ? GV_EFIELD : 0;
}

void gv_hex_encode(char *out, const uint8_t *bin, size_t n) {
  /* A byte's two digits at once, from the table of the 256 pairs. */
  /* clang-format off */
  static const char pairs[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
  /* clang-format on */

  for (size_t i = 0; i < n; i++)
    memcpy(out + 2 * i, pairs + 2 * bin[i], 2);
  out[2 * n] = '\0';
}

int gv_json_hex(const cJSON *obj, const char *key, uint8_t *out, size_t n,
                gv_why *why) {
  const char *s;
  size_t len;
  int rc = gv_json_str(obj, key, &s, &len, why);

  if (rc < 0)
    return rc;
  if (gv_hex_decode(out, n, s, len) < 0)
    return gv_fail(why, GV_EFIELD, "field '%s' is not %zu hex digits", key,
                   2 * n);
  return 0;
}

/* An array member of at most max elements; *n its size. */
int gv_json_array(const cJSON *obj, const char *key, int max, const cJSON **arr,
                  int *n, gv_why *why) {
  const cJSON *it = gv_json_get(obj, key);

  if (it == NULL)
    return gv_fail(why, GV_EFIELD, "missing field '%s'", key);
  if (!cJSON_IsArray(it))
    return gv_fail(why, GV_EFIELD, "field '%s' is not an array", key);
  *n = cJSON_GetArraySize(it);
  if (*n > max)
    return gv_fail(why, GV_ELIMIT, "field '%s' has %d entries, limit %d", key,
                   *n, max);
  *arr = it;
  return 0;
}

/* ---- the canonical form ---- */

/* 1 for a byte a string of the canonical form holds as it is: printable
 * ASCII (0x20..0x7e) but '"' and '\\'. */
/* clang-format off */
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
static const uint8_t str_plain[256] = {
    R16(0), R16(0),
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20: '"' */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50: '\\' */
    R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, /* 0x70: DEL */
};
#undef R16
/* clang-format on */

/* A string of printable ASCII at *p whose only escapes are \" and \\,
 * unescaped into *o (below o_end, with its NUL); advances *p and *o.
 * Unescaping never lengthens, so room for the rest of the text is asked
 * once: a long string in a short buffer is a no. Plain bytes go eight at
 * a time: a word's mask has a byte's high bit set where the byte is not
 * plain (below 0x20, '"', '\\', 0x7f and up). The subtractions' borrows
 * can mark bytes above a marked one, never below it, so the lowest mark
 * is exact; the whole word is copied and the output advanced to it. */
static bool scan_str(const char **p, const char *end, gv_json_tok *t, char **o,
                     const char *o_end) {
  const uint64_t ones = 0x0101010101010101ULL, highs = ones * 0x80;
  const unsigned char *q = (const unsigned char *)*p,
                      *e = (const unsigned char *)end;
  char *w = *o;

  if (q >= e || *q++ != '"' || o_end - w <= e - q)
    return false;
  t->s = w;
#ifdef __SSE2__
  /* Sixteen bytes at a time, every byte that is not plain in them handled
   * in one pass (a body's escaped quotes come every few bytes): the plain
   * run before each is stored whole from a load at its start, its first
   * bytes kept. A load reads 16 bytes from at most 17 past the block's
   * start, within the text while 32 are left; a store writes 16, within
   * the output, which has room for the rest of the text. */
  while (e - q >= 32) {
    const __m128i x = _mm_loadu_si128((const void *)q),
                  ctl = _mm_set1_epi8(0x1f);
    unsigned m = (unsigned)_mm_movemask_epi8(
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                  _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
                     _mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(x, ctl), ctl),
                                  _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f)))));
    size_t k = 0; /* the run's start, in this block */

    m |= (unsigned)_mm_movemask_epi8(x); /* 0x80 and up */
    while (m != 0) {
      size_t b = (size_t)__builtin_ctz(m);
      _mm_storeu_si128((void *)w, _mm_loadu_si128((const void *)(q + k)));
      w += b - k;
      if (q[b] == '"') {
        q += b;
        goto closed;
      }
      if (q[b] != '\\' || (q[b + 1] != '"' && q[b + 1] != '\\'))
        return false;
      *w++ = (char)q[b + 1];
      k = b + 2;
      m &= ~(3u << b); /* the escaped byte is marked too */
    }
    if (k <= 16) {
      _mm_storeu_si128((void *)w, _mm_loadu_si128((const void *)(q + k)));
      w += 16 - k;
      q += 16;
    } else {
      q += k; /* an escape across the block's end */
    }
  }
#endif
  for (;;) {
    while (e - q >= 8) {
      uint64_t x, m;
      memcpy(&x, q, 8);
      m = (((x - ones * 0x20) | ((x ^ ones * '"') - ones) |
            ((x ^ ones * '\\') - ones) | ((x ^ ones * 0x7f) - ones)) &
           ~x & highs) |
          (x & highs);
      memcpy(w, &x, 8);
      if (m == 0) {
        q += 8;
        w += 8;
        continue;
      }
      m = (unsigned)__builtin_ctzll(m) >> 3;
      q += m;
      w += m;
      break;
    }
    while (q < e && str_plain[*q])
      *w++ = (char)*q++;
    if (q >= e)
      return false;
    if (*q == '"')
      break;
    if (*q != '\\' || q + 1 >= e || (q[1] != '"' && q[1] != '\\'))
      return false;
    *w++ = (char)q[1];
    q += 2;
  }
#ifdef __SSE2__
closed:
#endif
  t->len = (size_t)(w - t->s);
  *w++ = '\0';
  *p = (const char *)q + 1;
  *o = w;
  return true;
}

static bool scan_uint(const char **p, const char *end, gv_json_tok *t) {
  const char *q = *p;
  uint64_t v = 0;
  int digits = 0;

  while (q < end && *q >= '0' && *q <= '9' && digits <= 15) {
    v = v * 10 + (uint64_t)(*q++ - '0');
    digits++;
  }
  /* No leading zero, no fraction or exponent (the next byte must end the
   * member), and exact as a double. */
  if (digits == 0 || digits > 15 || (digits > 1 && **p == '0'))
    return false;
  t->num = v;
  *p = q;
  return true;
}

bool gv_json_scan(const char *text, size_t len, const char *const *keys,
                  gv_json_tok *toks, size_t n, char *buf, size_t cap,
                  size_t *used) {
  const char *p = text, *end = text + len;
  char *o = buf;

  if (len < 2 || *p++ != '{' || text[len - 1] != '}')
    return false;
  for (size_t i = 0; i < n; i++) {
    size_t kl = strlen(keys[i]);
    gv_json_tok *t = &toks[i];

    if (i > 0 && (p >= end || *p++ != ','))
      return false;
    if ((size_t)(end - p) < kl + 3 || p[0] != '"' ||
        memcmp(p + 1, keys[i], kl) != 0 || p[kl + 1] != '"' || p[kl + 2] != ':')
      return false;
    p += kl + 3;
    switch (t->kind) {
    case GV_JSON_UINT:
      if (!scan_uint(&p, end, t))
        return false;
      break;
    case GV_JSON_STR:
      if (!scan_str(&p, end, t, &o, buf + cap))
        return false;
      break;
    case GV_JSON_OBJ:
      /* The rest but the closing brace; the caller scans it. */
      if (i + 1 != n || p >= end - 1 || *p != '{')
        return false;
      t->s = p;
      t->len = (size_t)(end - 1 - p);
      p = end - 1;
      break;
    default: return false;
    }
  }
  if (p != end - 1)
    return false;
  *used = (size_t)(o - buf);
  return true;
}
