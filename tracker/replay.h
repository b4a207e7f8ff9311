/* Replay protection for signed tracker requests (docs/TRACKER.md §2.3):
 * a clock window, a floor at the process start, and a cache of the
 * (id, nonce) pairs accepted whose ts is still inside the window. Sans-I/O:
 * `now` comes in as an argument and never decreases.
 *
 * A pair is recorded only once its request has passed every other check
 * (the caller peeks first, admits, makes its change, then records), so
 * refused requests cost no room, and a request the cache refuses changes
 * nothing else. A pair of ts is kept until ts + GV_TRK_SKEW_MS, the last moment
 * its request could be accepted again. Each pair is charged to the
 * request's source (gv_trk_ipkey: an IPv4 address or an IPv6 /64). The
 * cache holds at most `cap` pairs; when it is full, a new pair from a
 * source holding fewer pairs than the heaviest source takes the heaviest
 * source's oldest pair (an eviction), so that no flood, from any number of
 * addresses, can refuse a source that holds less than its share. Only a
 * source that is itself the heaviest is refused (-EAGAIN).
 *
 * An eviction never reopens a replay: the evicted pair's id keeps a floor
 * (one per id, at most `cap` of them), and that id's requests with
 * ts <= the floor are refused (GV_EDUP) for as long as the pair would have
 * been kept. A genuine client signs its next request later and passes.
 * When all `cap` floors are live (more than 2 x cap requests accepted
 * within one window), the floor that expires first is folded into one
 * global floor: every request, of any id, with ts <= the highest folded
 * ts is refused, until the window passes it. No newcomer within its share
 * is refused for want of a floor. Operations are O(log cap) (two expiry
 * heaps); memory is bounded by `cap` pairs, `cap` floors and `cap`
 * sources.
 *
 *   peek --ok--> admit --ok--> (caller's change) --ok--> record: recorded
 *   pair: recorded --prune (until <= now)--> forgotten
 *         recorded --evicted (cache full, heaviest source)--> floor of id
 *   floor: --raised (another pair of id evicted)--> floor of id
 *          --prune (until <= now)--> forgotten
 *          --folded (all floors live, this one first to expire)--> global
 *
 * Lifetime: gv_trk_replay_new() allocates, gv_trk_replay_free() frees. Not
 * thread-safe: the daemon holds replay_lock around each call, and around
 * the pair of peek and check only where it must be atomic.
 */
#ifndef GV_TRK_REPLAY_H
#define GV_TRK_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "identity.h"
#include "registry.h"

#define GV_TRK_NONCE_BYTES 16
#define GV_TRK_SKEW_MS 30000LL /* accepted |ts - now| */
#define GV_TRK_NONCE_CAP 262144

typedef struct gv_trk_replay gv_trk_replay;

/* start_ms: the process start; requests signed before it are refused.
 * cap >= 1 pairs. */
int gv_trk_replay_new(gv_trk_replay **out, size_t cap, int64_t start_ms,
                      const uint8_t hash_key[16]);
void gv_trk_replay_free(gv_trk_replay *rp);

/* Applies the rules to a request of id with ts and nonce, at now, without
 * recording anything. Returns 0, or with a reason in why: GV_EFUTURE
 * (ts > now + skew), GV_ESTALE (ts < now - skew, or before the start),
 * GV_EDUP (pair already recorded, or ts at or below the id's floor or the
 * global floor). */
int gv_trk_replay_peek(gv_trk_replay *rp, const uint8_t id[GV_ID_BYTES],
                       const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                       int64_t now, gv_why *why);

/* The rules of peek, and whether the pair would find room: -EAGAIN when
 * the cache is full and src is the heaviest source. Records nothing. */
int gv_trk_replay_admit(gv_trk_replay *rp, const gv_trk_ipkey *src,
                        const uint8_t id[GV_ID_BYTES],
                        const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                        int64_t now, gv_why *why);

/* Records the pair charged to src. Only right after admit said 0 for the
 * same arguments, with no call on rp in between (the daemon holds
 * replay_lock across both): then it fails only with GV_ENOMEM, and no pair
 * was recorded nor evicted (a floor may have been folded). */
int gv_trk_replay_record(gv_trk_replay *rp, const gv_trk_ipkey *src,
                         const uint8_t id[GV_ID_BYTES],
                         const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                         gv_why *why);

/* admit, then record, in one step (a second identical request gets
 * GV_EDUP); fails as they do. */
int gv_trk_replay_check(gv_trk_replay *rp, const gv_trk_ipkey *src,
                        const uint8_t id[GV_ID_BYTES],
                        const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                        int64_t now, gv_why *why);

/* A register of rec signed with nonce at ts, charged to rec->addr's source,
 * in the order that lets a refusal cost no one anything: admit, then
 * gv_trk_reg_begin() (which may take back someone's queued verification),
 * then record. *nrc: the nonce's result (0, or admit's or record's failure,
 * reason in nwhy); when *nrc < 0, begin was not run or was undone (abort,
 * keep 1) and the return value is 0. Otherwise returns begin's result
 * (reason in why); the nonce is recorded when begin succeeded or said
 * GV_EBUSY (a repeat of a register being verified), and not otherwise. */
int gv_trk_replay_register(gv_trk_replay *rp, gv_trk_reg *reg,
                           const gv_trk_rec *rec,
                           const uint8_t nonce[GV_TRK_NONCE_BYTES], int64_t ts,
                           int64_t now, int *nrc, gv_why *why, gv_why *nwhy);

/* Forgets the pairs and floors whose time is up; returns how many pairs. */
size_t gv_trk_replay_prune(gv_trk_replay *rp, int64_t now);

size_t gv_trk_replay_count(const gv_trk_replay *rp);

/* Pairs held for src (the unit tests check the fair share with it). */
size_t gv_trk_replay_count_of(const gv_trk_replay *rp, const gv_trk_ipkey *src);

/* Pairs forgotten early to make room, since the start. */
uint64_t gv_trk_replay_evictions(const gv_trk_replay *rp);

#endif
