/* query: lgr-cache's request targets, parsed from the raw URI as the
 * client sent it: the route, the source id (percent-decoded) and the
 * query parameters of each endpoint. No allocation but the one buffer a
 * parsed target owns; no I/O. */
#ifndef LGR_CACHE_QUERY_H
#define LGR_CACHE_QUERY_H

#include <stddef.h>
#include <stdint.h>

enum cq_route {
	CQ_NONE,		/* not parsed, or no such path */
	CQ_RECENT,		/* /apps/{id}/recentlogs */
	CQ_METRICS,		/* /apps/{id}/containermetrics */
	CQ_READ,		/* /api/v1/read/{source-id} */
	CQ_META,		/* /api/v1/meta */
	CQ_INFO,		/* /api/v1/info */
};

/* Envelope kinds of envelope_types, as bits: 1 << the v2 Envelope field
 * number of the message (4 log, 5 counter, 6 gauge, 7 timer, 10 event). */
#define CQ_KIND_BIT(k)	(1u << (k))
#define CQ_KINDS_ALL	(CQ_KIND_BIT(4) | CQ_KIND_BIT(5) | CQ_KIND_BIT(6) | \
	CQ_KIND_BIT(7) | CQ_KIND_BIT(10))

#define CQ_LIMIT_DEFAULT	100	/* log-cache's default read limit */
#define CQ_LIMIT_MAX		1000	/* and its most */
#define CQ_FILTER_MAX		1024	/* bytes of a name_filter pattern */
#define CQ_URI_MAX		8192	/* bytes of a request target */

struct cq {
	enum cq_route route;
	char *id;		/* source id, NUL-terminated, in buf */
	size_t idlen;		/* may hold NUL bytes: compare with idlen */
	/* recentlogs: limit, or -1 for every log kept (a missing, bad or
	 * negative limit, as the traffic controller reads it). read: the
	 * limit, CQ_LIMIT_DEFAULT when missing or 0. */
	int64_t limit;
	/* read only */
	int64_t start_time;	/* inclusive; 0 when missing */
	int64_t end_time;	/* exclusive; 0: now */
	unsigned kinds;		/* CQ_KIND_BIT set; 0: every kind */
	int descending;
	char *name_filter;	/* NULL, or a pattern in buf */
	char *buf;		/* owned */
};

/*
 * Parse a request target ("/path?query", as sent). Returns the HTTP
 * status the request should get if it fails: 0 when q holds a route,
 * 404 for a path lgr-cache does not serve, 400 for a bad query or bad
 * escape, 414 for a target over CQ_URI_MAX; then err holds a one-line
 * reason (printable ASCII, NUL-terminated). -1 with errno ENOMEM when
 * out of memory. Release q with cq_release whatever the result.
 *
 * Rules, as the Go servers apply them: percent escapes must be whole
 * ("%zz" is an error); in the query '+' is a space; parameters are split
 * on '&'; unknown parameters are ignored. read parameters follow
 * log-cache's gateway (SPEC.md section 8): start_time and end_time are
 * decimal int64; envelope_types is repeatable, by name (LOG, COUNTER,
 * GAUGE, TIMER, EVENT, ANY) or number; limit over 1000 or below 0 is an
 * error; descending is a Go bool (1 t T TRUE true True, 0 f F FALSE
 * false False); name_filter is at most CQ_FILTER_MAX bytes (whether it
 * is a valid regular expression is the caller's check). A parameter of
 * the read API given twice is an error, but envelope_types.
 */
int cq_parse(const char *target, struct cq *q, char *err, size_t errlen);
void cq_release(struct cq *q);

#endif
