/* statsd: statsd lines in, loggregator.v2 gauge envelopes out, with the
 * running counter and gauge values statsd-injector keeps, in bounded room. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "statsd.h"

enum statsd_kind {
	STATSD_COUNTER = 1,
	STATSD_GAUGE = 2,
};

struct statsd_slot {
	uint64_t hash;
	size_t off;		/* key in s->pool */
	uint32_t len;		/* 0: empty (no key is shorter than "o.n") */
	uint32_t kind;		/* enum statsd_kind */
	double value;
};

/* Everything one envelope needs but its strings and tags, in one piece. */
struct statsd_env {
	Loggregator__V2__Envelope e;
	Loggregator__V2__Gauge g;
	Loggregator__V2__Gauge__MetricsEntry me;
	Loggregator__V2__Gauge__MetricsEntry *mp[1];
	Loggregator__V2__GaugeValue gv;
};

/*
 * SipHash-2-4 keyed with s->seed, so that whoever picks the metric names
 * cannot pick names that pile up on one probe chain.
 */
static uint64_t
statsd_rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static void
statsd_sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = statsd_rotl(v[1], 13) ^ v[0];
	v[0] = statsd_rotl(v[0], 32);
	v[2] += v[3];
	v[3] = statsd_rotl(v[3], 16) ^ v[2];
	v[0] += v[3];
	v[3] = statsd_rotl(v[3], 21) ^ v[0];
	v[2] += v[1];
	v[1] = statsd_rotl(v[1], 17) ^ v[2];
	v[2] = statsd_rotl(v[2], 32);
}

static void
statsd_sipblock(uint64_t v[4], uint64_t m)
{
	v[3] ^= m;
	statsd_sipround(v);
	statsd_sipround(v);
	v[0] ^= m;
}

static uint64_t
statsd_hash(const uint64_t k[2], const unsigned char *p, size_t n)
{
	uint64_t v[4], m;
	size_t i, j;

	v[0] = k[0] ^ 0x736f6d6570736575ULL;
	v[1] = k[1] ^ 0x646f72616e646f6dULL;
	v[2] = k[0] ^ 0x6c7967656e657261ULL;
	v[3] = k[1] ^ 0x7465646279746573ULL;
	for (i = 0; n - i >= 8; i += 8) {
		for (m = 0, j = 0; j < 8; j++)
			m |= (uint64_t)p[i + j] << (8 * j);
		statsd_sipblock(v, m);
	}
	for (m = (uint64_t)n << 56, j = 0; i + j < n; j++)
		m |= (uint64_t)p[i + j] << (8 * j);
	statsd_sipblock(v, m);
	v[2] ^= 0xff;
	for (j = 0; j < 4; j++)
		statsd_sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

int
statsd_init(struct statsd *s, size_t max_keys, size_t max_key_bytes)
{
	size_t nslots = 1;

	memset(s, 0, sizeof(*s));
	/* At most half the slots in use keeps probe chains short. */
	if (max_keys > SIZE_MAX / 4 / sizeof(struct statsd_slot)) {
		errno = ENOMEM;
		return -1;
	}
	while (nslots < 2 * max_keys)
		nslots <<= 1;
	s->slots = calloc(nslots, sizeof(*s->slots));
	s->pool = malloc(max_key_bytes ? max_key_bytes : 1);
	s->num = malloc(STATSD_MAX_LINE + 1);
	if (s->slots == NULL || s->pool == NULL || s->num == NULL) {
		statsd_release(s);
		errno = ENOMEM;
		return -1;
	}
	s->mask = nslots - 1;
	s->max_keys = max_keys;
	s->pool_max = max_key_bytes;
	if (getrandom(s->seed, sizeof(s->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(s->seed)) {
		struct timespec ts;

		/* Early boot: weaker, but the table stays correct. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		s->seed[0] = (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)s;
		s->seed[1] = (uint64_t)ts.tv_sec ^
		    (uint64_t)(uintptr_t)s->slots;
	}
	return 0;
}

void
statsd_release(struct statsd *s)
{
	free(s->slots);
	free(s->pool);
	free(s->num);
	s->slots = NULL;
	s->pool = NULL;
	s->num = NULL;
	s->n_keys = s->max_keys = s->pool_used = s->pool_max = 0;
}

static int
statsd_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* \w, : and , of the tag section; ASCII only, as in Go's regexp. */
static int
statsd_tag_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    statsd_digit(c) || c == '_' || c == ':' || c == ',';
}

/* End of \d+(\.\d+)? at p[i], or i when no digit is there. Greedy, and
 * nothing after it in the pattern can make it give digits back. */
static size_t
statsd_number(const char *p, size_t n, size_t i)
{
	size_t j = i;

	while (j < n && statsd_digit(p[j]))
		j++;
	if (j == i)
		return i;
	if (j + 1 < n && p[j] == '.' && statsd_digit(p[j + 1])) {
		for (j += 2; j < n && statsd_digit(p[j]); j++)
			;
	}
	return j;
}

/* Everything after "ORIGIN.NAME:", from p[i]. The pattern has no choice
 * left here that backtracking could revisit: sign, value and type match
 * or fail, and the rate and tag groups take all they can. */
static int
statsd_tail(const char *p, size_t n, size_t i, struct statsd_line *m)
{
	size_t j;

	m->sign = 0;
	if (i < n && (p[i] == '+' || p[i] == '-'))
		m->sign = p[i++];
	if ((j = statsd_number(p, n, i)) == i)
		return -1;
	m->value = p + i;
	m->value_len = j - i;
	i = j;
	if (i >= n || p[i] != '|')
		return -1;
	i++;
	if (n - i >= 2 && p[i] == 'm' && p[i + 1] == 's') {
		m->type = 'm';
		i += 2;
	} else if (i < n && (p[i] == 'g' || p[i] == 'c')) {
		m->type = p[i++];
	} else
		return -1;
	m->rate = m->tags = NULL;
	m->rate_len = m->tags_len = 0;
	if (n - i >= 3 && p[i] == '|' && p[i + 1] == '@' &&
	    (j = statsd_number(p, n, i + 2)) > i + 2) {
		m->rate = p + i + 2;
		m->rate_len = j - (i + 2);
		i = j;
	}
	if (n - i >= 2 && p[i] == '|' && p[i + 1] == '#') {
		for (i += 2, j = i; j < n && statsd_tag_char(p[j]); j++)
			;
		m->tags = p + i;
		m->tags_len = j - i;
	}
	return 0;
}

/*
 * ([^.]+) must end at the first '.' after its start and ([^:]+) at the
 * first ':' after that, so a match starting at byte k (not a '.') has the
 * same groups, one byte of ORIGIN shorter, as one starting at k-1 unless
 * byte k-1 is a '.'. The leftmost match thus starts at 0 or just after a
 * '.': try those in order. Starts share the ':' until a '.' passes it, so
 * its position only moves forward and each tail is tried once: linear.
 */
int
statsd_match(const char *p, size_t n, struct statsd_line *m)
{
	const char *q;
	size_t s, d, c = 0, failed = SIZE_MAX;

	for (s = 0; s < n; s = d + 1) {
		if ((q = memchr(p + s, '.', n - s)) == NULL)
			break;
		d = (size_t)(q - p);
		if (d == s || n - d < 3 || p[d + 1] == ':')
			continue;	/* ORIGIN or NAME would be empty */
		if (c < d + 2) {
			q = memchr(p + d + 2, ':', n - (d + 2));
			if (q == NULL)
				break;	/* no later start has a ':' either */
			c = (size_t)(q - p);
		}
		if (c == failed)
			continue;
		if (statsd_tail(p, n, c + 1, m) == 0) {
			m->origin = p + s;
			m->origin_len = d - s;
			m->name = p + d + 1;
			m->name_len = c - (d + 1);
			return 0;
		}
		failed = c;
	}
	errno = EINVAL;
	return -1;
}

/* What Go's protobuf lets through a string field (utf8.ValidString), less
 * NUL, which protobuf-c strings cannot hold. */
static int
statsd_text_ok(const char *cp, size_t n)
{
	const unsigned char *p = (const unsigned char *)cp;
	unsigned char lo, hi;
	size_t i = 0, k, len;

	while (i < n) {
		if (p[i] == 0)
			return 0;
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		lo = 0x80;
		hi = 0xbf;
		if (p[i] >= 0xc2 && p[i] <= 0xdf)
			len = 2;
		else if (p[i] >= 0xe0 && p[i] <= 0xef)
			len = 3;
		else if (p[i] >= 0xf0 && p[i] <= 0xf4)
			len = 4;
		else
			return 0;
		if (p[i] == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (p[i] == 0xed)
			hi = 0x9f;	/* surrogates */
		else if (p[i] == 0xf0)
			lo = 0x90;	/* overlong */
		else if (p[i] == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
		if (n - i < len || p[i + 1] < lo || p[i + 1] > hi)
			return 0;
		for (k = 2; k < len; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xbf)
				return 0;
		i += len;
	}
	return 1;
}

/* Number of k:v pairs in the tag section, or 0 when one lacks its ':'
 * (Go's kv[1] would index past the end). */
static size_t
statsd_tag_pairs(const char *t, size_t n)
{
	size_t i, pairs = 1;
	int colon = 0;

	for (i = 0; i < n; i++) {
		if (t[i] == ',') {
			if (!colon)
				return 0;
			pairs++;
			colon = 0;
		} else if (t[i] == ':')
			colon = 1;
	}
	return colon ? pairs : 0;
}

/* The digits matched, as a double the way strconv.ParseFloat reads them:
 * correctly rounded, +Inf when too large (Go's range error is ignored). */
static double
statsd_number_value(struct statsd *s, const char *p, size_t n)
{
	memcpy(s->num, p, n);
	s->num[n] = '\0';
	return strtod(s->num, NULL);
}

static int
statsd_tag_before(const Loggregator__V2__Envelope__TagsEntry *a,
    const Loggregator__V2__Envelope__TagsEntry *b)
{
	int c = strcmp(a->key, b->key);

	/* Equal keys keep their order in the line (their order in memory). */
	return c < 0 || (c == 0 && a < b);
}

static void
statsd_sift(Loggregator__V2__Envelope__TagsEntry **t, size_t root, size_t n)
{
	Loggregator__V2__Envelope__TagsEntry *x;
	size_t child;

	while ((child = 2 * root + 1) < n) {
		if (child + 1 < n && statsd_tag_before(t[child], t[child + 1]))
			child++;
		if (!statsd_tag_before(t[root], t[child]))
			return;
		x = t[root];
		t[root] = t[child];
		t[child] = x;
		root = child;
	}
}

/* Heapsort: in place, n log n whatever the line holds, no allocation. */
static void
statsd_sort_tags(Loggregator__V2__Envelope__TagsEntry **t, size_t n)
{
	Loggregator__V2__Envelope__TagsEntry *x;
	size_t i;

	for (i = n / 2; i-- > 0;)
		statsd_sift(t, i, n);
	for (i = n; i-- > 1;) {
		x = t[0];
		t[0] = t[i];
		t[i] = x;
		statsd_sift(t, 0, i);
	}
}

/*
 * The tags map: "origin" first, then each pair in line order, the last of
 * each key winning as in Go's map. Sorted by key, so the envelope comes out
 * the same every time. 0, or -1 with errno ENOMEM.
 */
static int
statsd_put_tags(Loggregator__V2__Envelope *e, struct arena *a,
    const char *origin, const struct statsd_line *m, size_t pairs)
{
	Loggregator__V2__Envelope__TagsEntry *te, **tp;
	char *text = NULL, *key, *end;
	size_t i, n, out;

	n = pairs + 1;
	te = arena_alloc(a, n * sizeof(*te));
	tp = arena_alloc(a, n * sizeof(*tp));
	if (te == NULL || tp == NULL || (pairs > 0 &&
	    (text = arena_strndup(a, m->tags, m->tags_len)) == NULL))
		return -1;
	for (i = 0; i < n; i++) {
		loggregator__v2__envelope__tags_entry__init(&te[i]);
		tp[i] = &te[i];
	}
	te[0].key = (char *)"origin";
	te[0].value = (char *)origin;
	/* Cut the copy in place: "k:v:x,k2:v2" -> key "k", value "v". */
	for (i = 1, key = text; i < n; i++) {
		end = key + strcspn(key, ",");
		te[i].key = key;
		key = *end == ',' ? end + 1 : end;
		*end = '\0';
		te[i].value = strchr(te[i].key, ':');
		*te[i].value++ = '\0';
		te[i].value[strcspn(te[i].value, ":")] = '\0';
	}
	statsd_sort_tags(tp, n);
	for (i = 0, out = 0; i < n; i++) {
		if (i + 1 < n && strcmp(tp[i]->key, tp[i + 1]->key) == 0)
			continue;
		tp[out++] = tp[i];
	}
	e->tags = tp;
	e->n_tags = out;
	return 0;
}

static Loggregator__V2__Envelope *
statsd_envelope(struct arena *a, const struct statsd_line *m, size_t pairs,
    int64_t now_ns, double value)
{
	static char *const units[] = { "counter", "gauge", "ms" };
	struct statsd_env *b;
	char *origin, *name;

	b = arena_alloc(a, sizeof(*b));
	origin = arena_strndup(a, m->origin, m->origin_len);
	name = arena_strndup(a, m->name, m->name_len);
	if (b == NULL || origin == NULL || name == NULL)
		return NULL;
	loggregator__v2__envelope__init(&b->e);
	loggregator__v2__gauge__init(&b->g);
	loggregator__v2__gauge__metrics_entry__init(&b->me);
	loggregator__v2__gauge_value__init(&b->gv);
	b->gv.unit = units[m->type == 'c' ? 0 : m->type == 'g' ? 1 : 2];
	b->gv.value = value;
	b->me.key = name;
	b->me.value = &b->gv;
	b->mp[0] = &b->me;
	b->g.n_metrics = 1;
	b->g.metrics = b->mp;
	b->e.timestamp = now_ns;
	b->e.source_id = origin;
	b->e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE;
	b->e.gauge = &b->g;
	if (statsd_put_tags(&b->e, a, origin, m, pairs) == -1)
		return NULL;
	return &b->e;
}

/* The slot holding kind's key, or the empty slot where it would go. */
static struct statsd_slot *
statsd_find(struct statsd *s, uint32_t kind, const char *key, uint32_t len,
    uint64_t h)
{
	struct statsd_slot *sl;
	size_t i;

	/* n_keys < number of slots, so an empty slot ends every probe. */
	for (i = (size_t)h & s->mask;; i = (i + 1) & s->mask) {
		sl = &s->slots[i];
		if (sl->len == 0)
			return sl;
		if (sl->hash == h && sl->len == len && sl->kind == kind &&
		    memcmp(s->pool + sl->off, key, len) == 0)
			return sl;
	}
}

/* One line (no '\n', '\r' dropped): 1 when emitted, 0 when refused and
 * counted, -1 with errno when the arena or emit failed. */
static int
statsd_read_line(struct statsd *s, const char *p, size_t n, int64_t now_ns,
    struct arena *a, int (*emit)(void *, Loggregator__V2__Envelope *),
    void *ctx)
{
	struct statsd_line m;
	struct statsd_slot *sl = NULL;
	Loggregator__V2__Envelope *e;
	uint32_t kind = 0, klen = 0;
	uint64_t h = 0;
	size_t pairs = 0;
	double v, old = 0;

	s->lines++;
	if (n > STATSD_MAX_LINE || statsd_match(p, n, &m) == -1) {
		s->bad_lines++;
		return 0;
	}
	if (m.tags_len > 0 && (pairs = statsd_tag_pairs(m.tags,
	    m.tags_len)) == 0) {
		s->bad_tags++;
		return 0;
	}
	if (!statsd_text_ok(m.origin, m.origin_len) ||
	    !statsd_text_ok(m.name, m.name_len)) {
		s->bad_text++;
		return 0;
	}
	v = statsd_number_value(s, m.value, m.value_len);
	/* Rate 0 divides too: +Inf, or NaN for 0/0, as in Go. */
	if (m.rate_len > 0)
		v /= statsd_number_value(s, m.rate, m.rate_len);
	if (m.type != 'm') {
		/* The key is "ORIGIN.NAME", the bytes of the line itself. */
		kind = m.type == 'c' ? STATSD_COUNTER : STATSD_GAUGE;
		klen = (uint32_t)(m.origin_len + 1 + m.name_len);
		h = statsd_hash(s->seed, (const unsigned char *)m.origin, klen);
		sl = statsd_find(s, kind, m.origin, klen, h);
		if (sl->len == 0 && (s->n_keys >= s->max_keys ||
		    klen > s->pool_max - s->pool_used)) {
			s->table_full++;
			return 0;
		}
		if (sl->len != 0)
			old = sl->value;
		/* Every value read is >= +0 and x - x is +0, so no running
		 * value is ever -0, the one double protobuf-c would drop. */
		if (m.sign == '-')
			v = old - v;
		else if (m.sign == '+' || m.type == 'c')
			v = old + v;
	}
	if ((e = statsd_envelope(a, &m, pairs, now_ns, v)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (sl != NULL) {
		if (sl->len == 0) {
			memcpy(s->pool + s->pool_used, m.origin, klen);
			sl->hash = h;
			sl->off = s->pool_used;
			sl->len = klen;
			sl->kind = kind;
			s->pool_used += klen;
			s->n_keys++;
		}
		sl->value = v;
	}
	if (emit(ctx, e) == -1)
		return -1;
	s->emitted++;
	return 1;
}

/* Lines as bufio.ScanLines cuts them: every '\n' ends one (so "\n" is one
 * empty line), a last line without '\n' counts unless empty, and one '\r'
 * at the end of a line is dropped. */
int
statsd_datagram(struct statsd *s, const char *p, size_t n, int64_t now_ns,
    struct arena *a, int (*emit)(void *ctx, Loggregator__V2__Envelope *e),
    void *ctx)
{
	const char *nl;
	size_t pos = 0, end, len;
	int r, count = 0;

	while (pos < n) {
		nl = memchr(p + pos, '\n', n - pos);
		end = nl ? (size_t)(nl - p) : n;
		len = end - pos;
		if (len > 0 && p[end - 1] == '\r')
			len--;
		if ((r = statsd_read_line(s, p + pos, len, now_ns, a, emit,
		    ctx)) == -1)
			return -1;
		if (count < INT_MAX)
			count += r;
		pos = nl ? end + 1 : n;
	}
	return count;
}
