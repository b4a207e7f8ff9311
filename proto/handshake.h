/* The link handshake (PROTOCOL.md §4): SIGMA-I over crypto_kx ephemerals,
 * Ed25519 signatures over the transcript, identities encrypted.
 *
 * Sans-I/O: it consumes and produces whole handshake messages; the link
 * (link.h) frames them. It calls no clock and no socket; it draws ephemeral
 * keys from libsodium's randombytes.
 *
 *   initiator: gv_hs_new -> gv_hs_start (M1) -> gv_hs_read(M2) (M3) -> done
 *   responder: gv_hs_new -> gv_hs_read(M1) (M2) -> gv_hs_read(M3) -> done
 *
 * Lifetime: gv_hs_new() allocates; gv_hs_free() wipes and frees. The
 * identity passed to gv_hs_new() is borrowed and must outlive the handshake.
 * Every secret is wiped on every exit path: after a failure, after
 * completion (all but the two stream keys), and in gv_hs_free().
 */
#ifndef GV_HANDSHAKE_H
#define GV_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "identity.h"

#define GV_HS_M1_LEN 36
#define GV_HS_M2_LEN 144
#define GV_HS_M3_LEN 112
#define GV_HS_MSG_MAX GV_HS_M2_LEN
#define GV_HS_KEY_BYTES 32

typedef struct gv_hs gv_hs;

typedef enum gv_hs_role { GV_HS_INITIATOR, GV_HS_RESPONDER } gv_hs_role;

/* The result of a completed handshake. */
typedef struct gv_hs_result {
  uint8_t peer_id[GV_ID_BYTES];
  uint8_t tx_key[GV_HS_KEY_BYTES]; /* key of the stream this side sends */
  uint8_t rx_key[GV_HS_KEY_BYTES]; /* key of the stream it receives */
} gv_hs_result;

/* pin: for an initiator, the node id the responder must prove, or NULL to
 * accept any. Must be NULL for a responder (GV_EINVAL). */
int gv_hs_new(gv_hs **out, const gv_identity *self, gv_hs_role role,
              const uint8_t *pin);
void gv_hs_free(gv_hs *hs);

/* Initiator only: writes M1 (GV_HS_M1_LEN bytes) into out. */
int gv_hs_start(gv_hs *hs, uint8_t out[GV_HS_MSG_MAX], size_t *out_len);

/* Consumes one handshake message. Writes the reply, if there is one, into
 * out and its length into *out_len (0 when there is none). Returns 0, or on
 * failure GV_EHANDSHAKE, GV_EVERSION, GV_EDECRYPT, GV_EPEERID, GV_EBADSIG or
 * GV_ESTATE; the handshake is then dead and wiped. */
int gv_hs_read(gv_hs *hs, const uint8_t *msg, size_t len,
               uint8_t out[GV_HS_MSG_MAX], size_t *out_len);

int gv_hs_done(const gv_hs *hs);

/* After gv_hs_done(): copies the result out and wipes the keys held here. */
int gv_hs_finish(gv_hs *hs, gv_hs_result *res);

#endif
