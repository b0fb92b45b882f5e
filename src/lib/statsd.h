/* statsd: the statsd line protocol as Cloud Foundry's statsd-injector reads
 * it, and the loggregator.v2 gauge envelope it makes of each line.
 *
 * A datagram is split on '\n' and one trailing '\r' is dropped from each
 * line (Go's bufio.ScanLines). A line counts when this pattern matches
 * anywhere in it, the leftmost match winning (Go's regexp, unanchored):
 *
 *   ([^.]+)\.([^:]+):([+-]?)(\d+(\.\d+)?)\|(ms|g|c)(\|@(\d+(\.\d+)?))?(\|#([\w:,]*))?
 *   ORIGIN   NAME    sign   value          type    rate               tags
 *
 * so bytes before and after the match are ignored, "1e3" and ".5" are no
 * values, and the tag section ends at the first byte outside [A-Za-z0-9_:,].
 * value / rate (a rate of 0 gives +Inf, or NaN for a value of 0) becomes:
 *
 *   c   unit "counter": the running sum for ORIGIN.NAME; '-' subtracts
 *   g   unit "gauge": '+' and '-' adjust the running value, else it is set
 *   ms  unit "ms": the value itself, its sign ignored
 *
 * in an envelope with source_id ORIGIN, a Gauge holding one metric NAME, and
 * tags "origin" = ORIGIN plus each k:v pair of the tag section, later pairs
 * replacing earlier ones and "origin" alike; "a:b:c" gives a = b.
 *
 * Counters and gauges keep separate running values (two tables upstream),
 * for the life of the struct statsd. Where lgr parts from statsd-injector:
 *  - a tag pair without ':' (also an empty pair: "#a:b," or "#,") makes
 *    the injector panic and exit; here the line is refused (bad_tags);
 *  - ORIGIN or NAME not UTF-8: the injector builds the envelope, but Go's
 *    protobuf refuses to send it (and the stream is reopened); holding a
 *    NUL: the injector sends it, but a protobuf-c string cannot hold one.
 *    Here either line is refused (bad_text);
 *  - memory is bounded: at most max_keys running values and max_key_bytes
 *    of their ORIGIN.NAME keys, counters and gauges together. A c or g line
 *    for a new key when either is used up is refused (table_full), never
 *    evicting a key, so every value sent stays a true running value; ms
 *    lines need no key and always pass;
 *  - a line over STATSD_MAX_LINE bytes is refused (bad_lines); the
 *    injector reads 65535-byte datagrams, so it never sees one.
 * A refused line updates no running value. */
#ifndef LGR_STATSD_H
#define LGR_STATSD_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "v2/envelope.pb-c.h"

/* The longest line read, the injector's UDP read size. */
#define STATSD_MAX_LINE 65535

struct statsd_slot;

struct statsd {
	struct statsd_slot *slots;	/* owned; open addressing */
	size_t mask;		/* number of slots - 1 */
	size_t n_keys;
	size_t max_keys;
	unsigned char *pool;	/* owned; keys back to back, never freed */
	size_t pool_used;
	size_t pool_max;
	uint64_t seed[2];	/* hash key, random per struct */
	char *num;		/* owned; NUL-terminated copy of a number */

	/* Every line is counted once in lines, and then in exactly one of
	 * emitted, bad_lines, bad_tags, bad_text, table_full, unless
	 * statsd_datagram failed on it. */
	uint64_t lines;
	uint64_t emitted;
	uint64_t bad_lines;	/* no match, or longer than STATSD_MAX_LINE */
	uint64_t bad_tags;	/* a tag pair without ':' */
	uint64_t bad_text;	/* ORIGIN or NAME with a NUL or not UTF-8 */
	uint64_t table_full;	/* a new c/g key with the table full */
};

/* One matched line: spans into the caller's bytes, never NUL-terminated. */
struct statsd_line {
	const char *origin;
	size_t origin_len;	/* >= 1 */
	const char *name;
	size_t name_len;	/* >= 1 */
	char sign;		/* '+', '-' or 0 */
	char type;		/* 'c', 'g' or 'm' (ms) */
	const char *value;	/* digits, maybe '.' and digits */
	size_t value_len;
	const char *rate;	/* as value; rate_len 0 when absent */
	size_t rate_len;
	const char *tags;	/* after "|#"; tags_len 0: absent or empty */
	size_t tags_len;
};

/* Room for max_keys running values whose ORIGIN.NAME keys take at most
 * max_key_bytes in all; all of it is allocated here and never grows. Both
 * may be 0 (then every c and g line is table_full). Counts start at 0.
 * Returns 0, or -1 with errno ENOMEM (also when the sizes overflow). */
int statsd_init(struct statsd *s, size_t max_keys, size_t max_key_bytes);

/* Free what statsd_init allocated; s may then be initialised again. */
void statsd_release(struct statsd *s);

/* Match the pattern above against the n bytes at p (one line, no '\n';
 * the bytes may hold anything, NULs included). Reads only p[0..n). Returns
 * 0 and fills *m with spans into p, or -1 with errno EINVAL when nothing
 * matches (*m is then undefined). Takes time linear in n. */
int statsd_match(const char *p, size_t n, struct statsd_line *m);

/* Read one datagram of n bytes at p. For each line that gives a value,
 * build one envelope in a, with timestamp now_ns, and call emit(ctx, e);
 * other lines are counted in s and skipped. The envelope and its strings
 * live in a and borrow nothing from p or s; statsd_datagram touches none of
 * it once emit is called, so emit may keep it until the caller resets a, or
 * pack it and arena_reset(a) at once, which bounds a to one envelope: a
 * line of n bytes takes less than 1024 + 32 * n bytes of it.
 *
 * emit returns 0, or -1 to stop (keeping its errno). Returns the number
 * of envelopes emitted (at most INT_MAX), or -1 with errno when emit
 * failed (that line's running value is already updated, as upstream
 * updates it before it sends) or with ENOMEM when a is full (that line
 * changed nothing). Either way the lines after it are not read. The
 * injector reads datagrams into a 65535-byte buffer; so should the caller.
 * One thread at a time per struct statsd. */
int statsd_datagram(struct statsd *s, const char *p, size_t n, int64_t now_ns,
    struct arena *a, int (*emit)(void *ctx, Loggregator__V2__Envelope *e),
    void *ctx);

#endif
