/* rfc5424: loggregator.v2 envelopes as the RFC 5424 messages Loggregator's
 * syslog agent (agent-release v7.1.0, go-loggregator v9 rfc5424) writes to
 * syslog drains, byte for byte; see SPEC.md §10.
 *
 * Every message goes into a caller's buf; nothing else is allocated. */
#ifndef LGR_RFC5424_H
#define LGR_RFC5424_H

#include <stddef.h>

#include "buf.h"
#include "v2/envelope.pb-c.h"

/* What a drain URL's drain-type query parameter asks for (v7.1.0). */
enum rfc5424_drain_type {
	RFC5424_DRAIN_LOGS,	/* absent, "logs" or anything unknown */
	RFC5424_DRAIN_METRICS,	/* "metrics": counters and gauges */
	RFC5424_DRAIN_ALL,	/* "all": logs, counters and gauges */
	RFC5424_DRAIN_AGGREGATE	/* aggregate drains: every kind */
};

/* The drain type for a drain-type value (NULL when the URL has none). */
enum rfc5424_drain_type rfc5424_drain_type_parse(const char *value);

/* 1 when a drain of type t carries envelope e, else 0. Timers and events
 * reach aggregate drains only. */
int rfc5424_drain_carries(enum rfc5424_drain_type t,
    const Loggregator__V2__Envelope *e);

struct rfc5424_opts {
	const char *hostname;	/* the binding's hostname; NULL = "" */
	int omit_metadata;	/* 1: no tags@47450 (disable-metadata) */
	int framed;		/* 1: each message as "<len> <msg>" (TCP/TLS) */
};

/* Append to out every message envelope e makes: one for a log, counter,
 * timer or event, one per distinct gauge name (in wire order; Go's map
 * order is random), none for an envelope with no message. Returns the
 * number of messages appended, or -1 with errno EINVAL when Go would
 * refuse the envelope (why, if not NULL, then says which field, as Go's
 * error does), or EMSGSIZE/ENOMEM when out is full. On -1 out is left as
 * it was: Go writes nothing of an envelope it cannot convert. */
int rfc5424_format(const Loggregator__V2__Envelope *e,
    const struct rfc5424_opts *o, struct buf *out, const char **why);

/* Append "<n> " and the n bytes at msg: RFC 6587 octet counting. 0, or -1
 * with errno EMSGSIZE/ENOMEM (out then unchanged). */
int rfc5424_frame(struct buf *out, const void *msg, size_t n);

/* Walk framed messages in p[0..len): from *off, set *msg and *n to the
 * next message and advance *off. 1 for a message, 0 at the end, -1 with
 * errno EBADMSG when the bytes at *off are not a whole frame. */
int rfc5424_unframe(const char *p, size_t len, size_t *off,
    const char **msg, size_t *n);

#endif
