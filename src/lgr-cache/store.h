/* store: lgr-cache's memory. Per source id, the newest envelopes in the
 * order they came (logs in one list, every other kind in another, each
 * with its own count limit) and the latest container metric of each
 * instance; over all sources, a ceiling on the number of sources and on
 * the bytes they take, enforced by dropping the least recently written
 * source first.
 *
 * Threads: one writer (store_put_run, store_expire) and any number of
 * readers (the store_* answers), under one reader-writer lock that
 * prefers the writer. Readers also fill a per-record cache of the v1
 * form recentlogs serves; its bytes count against the same ceiling, and
 * a reader caches nothing that would go past it.
 *
 * Every answer is built into a struct buf the caller owns; the buf's
 * ceiling bounds it. */
#ifndef LGR_CACHE_STORE_H
#define LGR_CACHE_STORE_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "query.h"

struct store_opts {
	size_t recent_logs;	/* log envelopes kept per source */
	size_t recent_other;	/* envelopes of other kinds kept per source */
	size_t max_sources;
	size_t max_bytes;	/* every byte the store allocates */
	int64_t ttl_ns;		/* container metrics older than this are gone */
	size_t max_frame;	/* the longest envelope a reader may decode */
};

/* Totals since start, but bytes and sources: what is held now. */
struct store_counts {
	uint64_t ingress;	/* envelopes offered */
	uint64_t stored;	/* envelopes kept */
	uint64_t evicted;	/* envelopes dropped for newer ones or room */
	uint64_t evicted_sources;	/* whole sources dropped for room */
	uint64_t expired;	/* container metrics past the TTL */
	uint64_t dropped;	/* envelopes refused: malformed, no source id,
				 * or bigger than the store */
	uint64_t bytes;
	uint64_t sources;
};

struct store;

/* NULL with errno (ENOMEM). */
struct store *store_new(const struct store_opts *o);
void store_free(struct store *s);

/* Store count frames (4-byte length headers included) lying back to back
 * in len bytes at p, under one write lock. Bad envelopes are counted as
 * dropped; nothing here fails. */
void store_put_run(struct store *s, const unsigned char *p, size_t len,
    size_t count);

/* Forget container metrics whose timestamp is before now_ns - TTL. */
void store_expire(struct store *s, int64_t now_ns);

void store_counts(struct store *s, struct store_counts *c);

/*
 * Answers. Each returns 0 with the body appended to out, or -1 with errno
 * ENOMEM or EMSGSIZE (the body would pass out's ceiling). A source the
 * store does not hold gets an empty answer, never an error.
 *
 * recentlogs: the newest limit (-1: all) log envelopes of the source
 * that have a v1 LogMessage form, oldest first, each a part of a
 * multipart body with that boundary, in Go's multipart.Writer framing.
 * Logs are left out, oldest first, rather than pass body_max bytes.
 */
int store_recent_logs(struct store *s, const char *id, size_t idlen,
    int64_t limit, const char *boundary, size_t body_max, struct buf *out);

/* containermetrics: the latest v1 ContainerMetric of each instance of the
 * source not older than the TTL at now_ns, by instance index. */
int store_container_metrics(struct store *s, const char *id, size_t idlen,
    int64_t now_ns, const char *boundary, struct buf *out);

/* log-cache's read: q's parameters (cq_parse); re is q->name_filter
 * compiled, or NULL. end_ns replaces an end_time of 0. The JSON is
 * {"envelopes":{"batch":[...]}} in the gateway's form. */
int store_read(struct store *s, const struct cq *q, const regex_t *re,
    int64_t end_ns, struct buf *out);

/* log-cache's meta: {"meta":{"<id>":{"count":"N","expired":"N",
 * "oldestTimestamp":"ns","newestTimestamp":"ns"},...}}, ids sorted
 * bytewise, sources holding no envelope left out. */
int store_meta(struct store *s, struct buf *out);

/* Go's multipart.Writer: first part "--B\r\n\r\n", later ones
 * "\r\n--B\r\n\r\n", closed by "\r\n--B--\r\n" (so an empty body is just
 * the closing line). */
int mp_part(struct buf *out, const char *boundary, const void *p, size_t n,
    int first);
int mp_close(struct buf *out, const char *boundary);

#endif
