/* store: per-source lists of envelope bytes behind a hash index and an
 * LRU list, every allocation counted against --max-bytes. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "arena.h"
#include "conv.h"
#include "envelope.h"
#include "frame.h"
#include "json.h"
#include "pbwire.h"
#include "store.h"

#define SOURCE_ID_MAX	4096	/* longer source ids are refused */

/* One stored envelope: its bytes as they came, and the v1 form
 * recentlogs serves, made by the first reader that needs it. */
struct rec {
	struct rec *next;	/* newer */
	struct v1 *_Atomic v1;	/* NULL until made; NO_V1 if none */
	int64_t ts;
	uint64_t seq;		/* store-wide order of arrival */
	uint32_t len;
	uint8_t kind;		/* PB_ENV_LOG ... PB_ENV_EVENT, or 0 */
	unsigned char data[];
};

struct v1 {
	size_t cost;		/* bytes counted in cache_bytes */
	uint32_t len;
	unsigned char data[];
};

/* A log with no v1 LogMessage form (an Error, an empty payload, bytes
 * that do not decode): remembered so it is not converted again. */
static struct v1 no_v1;
#define NO_V1 (&no_v1)

/* The latest container metric of one instance, as v1 bytes. */
struct cmet {
	struct cmet *next;
	int64_t ts;
	int32_t instance;
	uint32_t len;
	size_t cost;
	unsigned char data[];
};

struct list {
	struct rec *head, *tail;	/* oldest, newest */
	size_t n;
};

struct src {
	struct src *hnext;		/* hash chain */
	struct src *prev, *next;	/* LRU: head is least recently written */
	struct list logs, other;
	struct cmet *cms;
	uint64_t expired;		/* envelopes dropped from this source */
	uint64_t hash;
	size_t cost;			/* of this struct */
	size_t idlen;
	char id[];			/* NUL-terminated too */
};

struct store {
	struct store_opts o;
	pthread_rwlock_t lock;
	struct src **table;
	size_t mask;
	uint64_t key[2];
	struct src *lru_head, *lru_tail;
	size_t nsources;
	size_t bytes;			/* writer's allocations */
	_Atomic size_t cache_bytes;	/* readers' v1 forms */
	uint64_t seq;
	struct arena arena;		/* the writer's, for container metrics */
	struct store_counts c;
	pthread_key_t tls;		/* each reader thread's struct scratch */
};

/* A reader thread's working space, kept between requests. */
struct scratch {
	struct arena arena;
	struct rec **recs;
	size_t cap;
};

static size_t
cost_of(void *p)
{
	/* What malloc took: the usable size plus glibc's chunk header. */
	return malloc_usable_size(p) + sizeof(size_t);
}

/* --- hashing: SipHash-1-3 keyed at start, so no client can choose
 * source ids that all land in one chain --------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
} while (0)

static uint64_t
sip13(const uint64_t k[2], const unsigned char *p, size_t n)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ k[0];
	uint64_t v1 = 0x646f72616e646f6dULL ^ k[1];
	uint64_t v2 = 0x6c7967656e657261ULL ^ k[0];
	uint64_t v3 = 0x7465646279746573ULL ^ k[1];
	uint64_t m, b = (uint64_t)n << 56;
	size_t i, j, end = n - n % 8;

	for (i = 0; i < end; i += 8) {
		for (m = 0, j = 0; j < 8; j++)
			m |= (uint64_t)p[i + j] << (8 * j);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (j = 0; j < n % 8; j++)
		b |= (uint64_t)p[end + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* --- sources -------------------------------------------------------------- */

static struct src *
src_find(struct store *s, const char *id, size_t idlen, uint64_t h)
{
	struct src *x;

	for (x = s->table[h & s->mask]; x != NULL; x = x->hnext)
		if (x->hash == h && x->idlen == idlen &&
		    memcmp(x->id, id, idlen) == 0)
			return x;
	return NULL;
}

static void
lru_unlink(struct store *s, struct src *x)
{
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		s->lru_head = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	else
		s->lru_tail = x->prev;
	x->prev = x->next = NULL;
}

static void
lru_append(struct store *s, struct src *x)
{
	x->prev = s->lru_tail;
	x->next = NULL;
	if (s->lru_tail != NULL)
		s->lru_tail->next = x;
	else
		s->lru_head = x;
	s->lru_tail = x;
}

static void
lru_touch(struct store *s, struct src *x)
{
	if (s->lru_tail == x)
		return;
	lru_unlink(s, x);
	lru_append(s, x);
}

static void
v1_drop(struct store *s, struct rec *r)
{
	struct v1 *v = atomic_load_explicit(&r->v1, memory_order_relaxed);

	if (v != NULL && v != NO_V1) {
		atomic_fetch_sub_explicit(&s->cache_bytes, v->cost,
		    memory_order_relaxed);
		free(v);
	}
}

static void
rec_free(struct store *s, struct rec *r)
{
	v1_drop(s, r);
	s->bytes -= cost_of(r);
	free(r);
}

/* Drop the oldest envelope of l. */
static void
list_pop(struct store *s, struct src *x, struct list *l)
{
	struct rec *r = l->head;

	l->head = r->next;
	if (l->head == NULL)
		l->tail = NULL;
	l->n--;
	x->expired++;
	s->c.evicted++;
	rec_free(s, r);
}

/* Drop x and all it holds; evicted: it goes for room, and counts so. */
static void
src_remove(struct store *s, struct src *x, int evicted)
{
	struct src **pp = &s->table[x->hash & s->mask];
	struct rec *r, *rn;
	struct cmet *m, *mn;

	while (*pp != x)
		pp = &(*pp)->hnext;
	*pp = x->hnext;
	lru_unlink(s, x);
	for (r = x->logs.head; r != NULL; r = rn) {
		rn = r->next;
		rec_free(s, r);
	}
	for (r = x->other.head; r != NULL; r = rn) {
		rn = r->next;
		rec_free(s, r);
	}
	for (m = x->cms; m != NULL; m = mn) {
		mn = m->next;
		s->bytes -= m->cost;
		free(m);
	}
	s->c.evicted += x->logs.n + x->other.n;
	s->c.evicted_sources += evicted;
	s->bytes -= x->cost;
	s->nsources--;
	free(x);
}

static struct src *
src_add(struct store *s, const char *id, size_t idlen, uint64_t h)
{
	struct src *x;

	if (s->nsources >= s->o.max_sources && s->lru_head != NULL)
		src_remove(s, s->lru_head, 1);
	x = calloc(1, sizeof(*x) + idlen + 1);
	if (x == NULL)
		return NULL;
	memcpy(x->id, id, idlen);
	x->idlen = idlen;
	x->hash = h;
	x->cost = cost_of(x);
	s->bytes += x->cost;
	x->hnext = s->table[h & s->mask];
	s->table[h & s->mask] = x;
	lru_append(s, x);
	s->nsources++;
	return x;
}

/* Free the oldest envelope of x, or a container metric when it holds no
 * envelope. 0, or -1 when x holds nothing more to free. */
static int
src_shrink(struct store *s, struct src *x)
{
	struct list *l = NULL;
	struct cmet *m;

	if (x->logs.head != NULL && (x->other.head == NULL ||
	    x->logs.head->seq < x->other.head->seq))
		l = &x->logs;
	else if (x->other.head != NULL)
		l = &x->other;
	if (l != NULL) {
		list_pop(s, x, l);
		return 0;
	}
	if ((m = x->cms) == NULL)
		return -1;
	x->cms = m->next;
	s->bytes -= m->cost;
	free(m);
	return 0;
}

/* Bring the store under its ceiling; keep keeps the source just written
 * to, whose own oldest envelopes go only when it is the last. */
static void
store_fit(struct store *s, struct src *keep)
{
	while (s->bytes + atomic_load_explicit(&s->cache_bytes,
	    memory_order_relaxed) > s->o.max_bytes) {
		struct src *victim = s->lru_head;

		if (victim == keep)
			victim = keep->next;
		if (victim != NULL) {
			src_remove(s, victim, 1);
			continue;
		}
		if (keep == NULL || src_shrink(s, keep) == -1)
			break;
	}
}

/* --- ingest --------------------------------------------------------------- */

struct peek {
	int64_t ts;
	const char *sid;
	size_t sidn;
	int kind;
	const uint8_t *msg;
	size_t msgn;
};

/* The fields the store needs, read from the top level of the envelope;
 * -1 when it is malformed or a known field has the wrong wire type. */
static int
peek(const uint8_t *p, size_t n, struct peek *k)
{
	const uint8_t *cur = p, *end = p + n;
	struct pb_field f;
	int rc;

	memset(k, 0, sizeof(*k));
	while ((rc = pb_next(&cur, end, &f)) == 1) {
		switch (f.num) {
		case PB_ENV_TIMESTAMP:
			if (f.wire != PB_WIRE_VARINT)
				return -1;
			k->ts = (int64_t)f.varint;
			break;
		case PB_ENV_SOURCE_ID:
			if (f.wire != PB_WIRE_LEN)
				return -1;
			k->sid = (const char *)f.data;
			k->sidn = f.len;
			break;
		case PB_ENV_LOG:
		case PB_ENV_COUNTER:
		case PB_ENV_GAUGE:
		case PB_ENV_TIMER:
		case PB_ENV_EVENT:
			if (f.wire != PB_WIRE_LEN)
				return -1;
			k->kind = (int)f.num;
			k->msg = f.data;
			k->msgn = f.len;
			break;
		case PB_ENV_DEPRECATED_TAGS:
		case PB_ENV_INSTANCE_ID:
		case PB_ENV_TAGS:
			if (f.wire != PB_WIRE_LEN)
				return -1;
			break;
		default:
			break;
		}
	}
	return rc;
}

/* 1 when a Gauge's metrics name all five container-metric keys: only
 * then is it worth decoding to see whether ToV1 makes a ContainerMetric. */
static int
gauge_is_container(const uint8_t *p, size_t n)
{
	static const char *const need[] = {
		"cpu", "memory", "disk", "memory_quota", "disk_quota",
	};
	const uint8_t *cur = p, *end = p + n, *ec, *ee;
	struct pb_field f, g;
	unsigned seen = 0;
	size_t i;

	while (pb_next(&cur, end, &f) == 1) {
		if (f.num != 1 || f.wire != PB_WIRE_LEN)
			continue;
		ec = f.data;
		ee = f.data + f.len;
		while (pb_next(&ec, ee, &g) == 1) {
			if (g.num != 1 || g.wire != PB_WIRE_LEN)
				continue;
			for (i = 0; i < 5; i++)
				if (g.len == strlen(need[i]) &&
				    memcmp(g.data, need[i], g.len) == 0)
					seen |= 1u << i;
		}
	}
	return seen == 0x1f;
}

/* Keep the envelope's v1 ContainerMetric as its instance's latest,
 * unless a newer one is held (as doppler's container metric sink). */
static void
put_container(struct store *s, struct src *x, const uint8_t *p, size_t n)
{
	Loggregator__V2__Envelope *e;
	Events__Envelope **v;
	struct cmet *m, **pp;
	size_t k, len;
	int32_t inst;

	arena_reset(&s->arena);
	if ((e = envelope_unpack(&s->arena, p, n)) == NULL ||
	    conv_v2_to_v1(e, &s->arena, &v, &k) == -1 || k != 1 ||
	    v[0]->eventtype != EVENTS__ENVELOPE__EVENT_TYPE__ContainerMetric ||
	    v[0]->containermetric == NULL || !conv_v1_complete(v[0]))
		return;
	inst = v[0]->containermetric->instanceindex;
	for (pp = &x->cms; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->instance == inst)
			break;
	if (*pp != NULL && (*pp)->ts >= v[0]->timestamp)
		return;
	len = events__envelope__get_packed_size(v[0]);
	if (len > UINT32_MAX || (m = malloc(sizeof(*m) + len)) == NULL)
		return;
	m->ts = v[0]->timestamp;
	m->instance = inst;
	m->len = (uint32_t)len;
	events__envelope__pack(v[0], m->data);
	m->cost = cost_of(m);
	s->bytes += m->cost;
	if (*pp != NULL) {
		m->next = (*pp)->next;
		s->bytes -= (*pp)->cost;
		free(*pp);
	} else {
		m->next = NULL;
	}
	*pp = m;
}

static void
store_put(struct store *s, const uint8_t *p, size_t n)
{
	struct peek k;
	struct list *l;
	struct src *x;
	struct rec *r;
	size_t cap;
	uint64_t h;
	int cm;

	s->c.ingress++;
	if (peek(p, n, &k) == -1 || k.sidn == 0 || k.sidn > SOURCE_ID_MAX ||
	    n > UINT32_MAX) {
		s->c.dropped++;
		return;
	}
	l = NULL;
	cap = k.kind == PB_ENV_LOG ? s->o.recent_logs : s->o.recent_other;
	cm = k.kind == PB_ENV_GAUGE && gauge_is_container(k.msg, k.msgn);
	if (cap == 0 && !cm)
		return;
	h = sip13(s->key, (const unsigned char *)k.sid, k.sidn);
	if ((x = src_find(s, k.sid, k.sidn, h)) == NULL &&
	    (x = src_add(s, k.sid, k.sidn, h)) == NULL) {
		s->c.dropped++;
		return;
	}
	lru_touch(s, x);
	if (cap > 0) {
		r = malloc(sizeof(*r) + n);
		if (r == NULL || cost_of(r) + x->cost > s->o.max_bytes) {
			/* Bigger than the whole store may hold. */
			free(r);
			s->c.dropped++;
		} else {
			memcpy(r->data, p, n);
			r->next = NULL;
			atomic_init(&r->v1, NULL);
			r->ts = k.ts;
			r->seq = s->seq++;
			r->len = (uint32_t)n;
			r->kind = (uint8_t)k.kind;
			s->bytes += cost_of(r);
			l = k.kind == PB_ENV_LOG ? &x->logs : &x->other;
			if (l->tail != NULL)
				l->tail->next = r;
			else
				l->head = r;
			l->tail = r;
			l->n++;
			s->c.stored++;
			if (l->n > cap)
				list_pop(s, x, l);
		}
	}
	if (cm)
		put_container(s, x, p, n);
	store_fit(s, x);
	if (x->logs.n == 0 && x->other.n == 0 && x->cms == NULL)
		src_remove(s, x, 0);	/* nothing came of it */
}

void
store_put_run(struct store *s, const unsigned char *p, size_t len,
    size_t count)
{
	const unsigned char *end = p + len;
	uint32_t n;

	pthread_rwlock_wrlock(&s->lock);
	while (count-- > 0 && (size_t)(end - p) >= FRAME_HEADER) {
		n = frame_get_len(p);
		if (n > (size_t)(end - p) - FRAME_HEADER)
			break;
		store_put(s, p + FRAME_HEADER, n);
		p += FRAME_HEADER + n;
	}
	pthread_rwlock_unlock(&s->lock);
}

void
store_expire(struct store *s, int64_t now_ns)
{
	int64_t oldest = now_ns - s->o.ttl_ns;
	struct src *x, *xn;
	struct cmet **pp, *m;

	pthread_rwlock_wrlock(&s->lock);
	for (x = s->lru_head; x != NULL; x = xn) {
		xn = x->next;
		for (pp = &x->cms; (m = *pp) != NULL;) {
			if (m->ts >= oldest) {
				pp = &m->next;
				continue;
			}
			*pp = m->next;
			s->bytes -= m->cost;
			s->c.expired++;
			free(m);
		}
		if (x->logs.n == 0 && x->other.n == 0 && x->cms == NULL)
			src_remove(s, x, 0);
	}
	pthread_rwlock_unlock(&s->lock);
}

void
store_counts(struct store *s, struct store_counts *c)
{
	pthread_rwlock_rdlock(&s->lock);
	*c = s->c;
	c->bytes = s->bytes + atomic_load(&s->cache_bytes);
	c->sources = s->nsources;
	pthread_rwlock_unlock(&s->lock);
}

/* --- readers -------------------------------------------------------------- */

static void
scratch_free(void *p)
{
	struct scratch *sc = p;

	arena_release(&sc->arena);
	free(sc->recs);
	free(sc);
}

static struct scratch *
scratch_get(struct store *s)
{
	struct scratch *sc = pthread_getspecific(s->tls);

	if (sc != NULL)
		return sc;
	sc = calloc(1, sizeof(*sc));
	if (sc == NULL)
		return NULL;
	/* Room to decode the largest envelope with its every map entry. */
	if (arena_init(&sc->arena, 64 * 1024, 16 * s->o.max_frame +
	    1024 * 1024) == -1) {
		free(sc);
		return NULL;
	}
	pthread_setspecific(s->tls, sc);
	return sc;
}

/* Room for n record pointers in sc. */
static int
scratch_recs(struct scratch *sc, size_t n)
{
	struct rec **p;

	if (n <= sc->cap)
		return 0;
	p = realloc(sc->recs, n * sizeof(*p));
	if (p == NULL)
		return -1;
	sc->recs = p;
	sc->cap = n;
	return 0;
}

static struct src *
src_lookup(struct store *s, const char *id, size_t idlen)
{
	if (idlen == 0 || idlen > SOURCE_ID_MAX)
		return NULL;
	return src_find(s, id, idlen, sip13(s->key,
	    (const unsigned char *)id, idlen));
}

int
mp_part(struct buf *out, const char *boundary, const void *p, size_t n,
    int first)
{
	size_t start = out->len;

	if ((!first && buf_append(out, "\r\n", 2) == -1) ||
	    buf_append(out, "--", 2) == -1 || buf_puts(out, boundary) == -1 ||
	    buf_append(out, "\r\n\r\n", 4) == -1 ||
	    buf_append(out, p, n) == -1) {
		out->len = start;
		return -1;
	}
	return 0;
}

int
mp_close(struct buf *out, const char *boundary)
{
	size_t start = out->len;

	if (buf_append(out, "\r\n--", 4) == -1 ||
	    buf_puts(out, boundary) == -1 ||
	    buf_append(out, "--\r\n", 4) == -1) {
		out->len = start;
		return -1;
	}
	return 0;
}

/* The v1 LogMessage bytes of a log, in a fresh struct v1; NO_V1 when it
 * has none, NULL when out of memory. */
static struct v1 *
v1_make(struct arena *a, const struct rec *r)
{
	Loggregator__V2__Envelope *e;
	Events__Envelope **v;
	struct v1 *out;
	size_t k, len;

	arena_reset(a);
	if ((e = envelope_unpack(a, r->data, r->len)) == NULL)
		return errno == ENOMEM ? NULL : NO_V1;
	if (conv_v2_to_v1(e, a, &v, &k) == -1)
		return NULL;
	if (k != 1 || v[0]->eventtype !=
	    EVENTS__ENVELOPE__EVENT_TYPE__LogMessage ||
	    v[0]->logmessage == NULL || !conv_v1_complete(v[0]))
		return NO_V1;
	len = events__envelope__get_packed_size(v[0]);
	if (len > UINT32_MAX || (out = malloc(sizeof(*out) + len)) == NULL)
		return NULL;
	out->len = (uint32_t)len;
	events__envelope__pack(v[0], out->data);
	out->cost = cost_of(out);
	return out;
}

/* r's v1 form, made and cached if need be. A form that the ceiling has
 * no room for is handed out uncached: *tmp gets it, for the caller to
 * free. NULL when out of memory. */
static struct v1 *
v1_get(struct store *s, struct arena *a, struct rec *r, struct v1 **tmp)
{
	struct v1 *v = atomic_load_explicit(&r->v1, memory_order_acquire);
	struct v1 *expect = NULL;
	size_t cur;

	*tmp = NULL;
	if (v != NULL)
		return v;
	if ((v = v1_make(a, r)) == NULL)
		return NULL;
	if (v != NO_V1) {
		cur = atomic_load_explicit(&s->cache_bytes,
		    memory_order_relaxed);
		do {
			if (s->bytes + cur + v->cost > s->o.max_bytes) {
				*tmp = v;
				return v;
			}
		} while (!atomic_compare_exchange_weak(&s->cache_bytes, &cur,
		    cur + v->cost));
	}
	if (!atomic_compare_exchange_strong(&r->v1, &expect, v)) {
		/* Another reader made it first. */
		if (v != NO_V1) {
			atomic_fetch_sub(&s->cache_bytes, v->cost);
			free(v);
		}
		return expect;
	}
	return v;
}

/* Append n bytes at p to out, whose room was reserved. */
static void
put_raw(struct buf *out, const void *p, size_t n)
{
	memcpy(out->data + out->len, p, n);
	out->len += n;
}

int
store_recent_logs(struct store *s, const char *id, size_t idlen,
    int64_t limit, const char *boundary, size_t body_max, struct buf *out)
{
	size_t blen = strlen(boundary), frame = 8 + blen, n, i, first;
	size_t total = frame;	/* the closing delimiter */
	struct scratch *sc;
	struct v1 *v, *tmp;
	struct src *x;
	struct rec *r;
	int rc = -1, parts = 0;

	pthread_rwlock_rdlock(&s->lock);
	if ((sc = scratch_get(s)) == NULL)
		goto out;
	x = src_lookup(s, id, idlen);
	n = 0;
	if (x != NULL) {
		if (scratch_recs(sc, x->logs.n) == -1)
			goto out;
		for (r = x->logs.head; r != NULL; r = r->next)
			sc->recs[n++] = r;
	}
	/* Newest first, to pick the newest limit and to size the body; an
	 * entry left NULL has no LogMessage form. */
	first = n;
	for (i = n; i > 0 && (limit < 0 || parts < limit); i--) {
		r = sc->recs[i - 1];
		if ((v = v1_get(s, &sc->arena, r, &tmp)) == NULL)
			goto out;
		free(tmp);	/* only its size matters here */
		if (v == NO_V1) {
			sc->recs[i - 1] = NULL;
			continue;
		}
		if (total + v->len + frame > body_max)
			break;
		total += v->len + frame;
		parts++;
		first = i - 1;
	}
	if (buf_reserve(out, total) == -1)
		goto out;
	/* Go's multipart.Writer framing (mp_part, mp_close), written
	 * straight into the room reserved. */
	parts = 0;
	for (i = first; i < n; i++) {
		if ((r = sc->recs[i]) == NULL)
			continue;
		if ((v = v1_get(s, &sc->arena, r, &tmp)) == NULL)
			goto out;
		if (v == NO_V1) {
			free(tmp);
			continue;
		}
		/* The same parts as above, so they fit; checked anyway. */
		if (out->cap - out->len < v->len + 2 * frame) {
			free(tmp);
			break;
		}
		if (parts++ > 0)
			put_raw(out, "\r\n", 2);
		put_raw(out, "--", 2);
		put_raw(out, boundary, blen);
		put_raw(out, "\r\n\r\n", 4);
		put_raw(out, v->data, v->len);
		free(tmp);
	}
	rc = mp_close(out, boundary);
out:
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

static int
cmet_by_instance(const void *a, const void *b)
{
	const struct cmet *x = *(const struct cmet *const *)a;
	const struct cmet *y = *(const struct cmet *const *)b;

	return (x->instance > y->instance) - (x->instance < y->instance);
}

int
store_container_metrics(struct store *s, const char *id, size_t idlen,
    int64_t now_ns, const char *boundary, struct buf *out)
{
	struct cmet *m, **v = NULL;
	size_t n = 0, i;
	struct src *x;
	int rc = -1;

	pthread_rwlock_rdlock(&s->lock);
	x = src_lookup(s, id, idlen);
	if (x != NULL) {
		for (m = x->cms; m != NULL; m = m->next)
			n++;
		if (n > 0 && (v = malloc(n * sizeof(*v))) == NULL)
			goto out;
		n = 0;
		for (m = x->cms; m != NULL; m = m->next)
			if (m->ts >= now_ns - s->o.ttl_ns)
				v[n++] = m;
		if (n > 1)
			qsort(v, n, sizeof(*v), cmet_by_instance);
	}
	for (i = 0; i < n; i++)
		if (mp_part(out, boundary, v[i]->data, v[i]->len, i == 0) == -1)
			goto out;
	rc = mp_close(out, boundary);
out:
	pthread_rwlock_unlock(&s->lock);
	free(v);
	return rc;
}

static int
rec_by_time(const void *a, const void *b)
{
	const struct rec *x = *(const struct rec *const *)a;
	const struct rec *y = *(const struct rec *const *)b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static int
name_matches(const regex_t *re, const char *name)
{
	return regexec(re, name != NULL ? name : "", 0, NULL, 0) == 0;
}

/* log-cache's filterByName: counters and timers by name, gauges cut down
 * to the metrics whose names match; every other kind is left out. 1 to
 * keep e (possibly changed), 0 to leave it out, -1 out of memory. */
static int
name_filter(struct arena *a, Loggregator__V2__Envelope *e, const regex_t *re)
{
	Loggregator__V2__Gauge *g, *ng;
	size_t i;

	switch (e->message_case) {
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER:
		return name_matches(re, e->counter->name);
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER:
		return name_matches(re, e->timer->name);
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE:
		g = e->gauge;
		if ((ng = arena_alloc(a, sizeof(*ng))) == NULL)
			return -1;
		loggregator__v2__gauge__init(ng);
		if (g->n_metrics > 0 && (ng->metrics = arena_alloc(a,
		    g->n_metrics * sizeof(*ng->metrics))) == NULL)
			return -1;
		for (i = 0; i < g->n_metrics; i++)
			if (g->metrics[i] != NULL &&
			    name_matches(re, g->metrics[i]->key))
				ng->metrics[ng->n_metrics++] = g->metrics[i];
		e->gauge = ng;
		return ng->n_metrics > 0;
	default:
		return 0;
	}
}

int
store_read(struct store *s, const struct cq *q, const regex_t *re,
    int64_t end_ns, struct buf *out)
{
	int64_t end = q->end_time != 0 ? q->end_time : end_ns;
	size_t start_len = out->len, n = 0, i, got = 0;
	Loggregator__V2__Envelope *e;
	struct list *ls[2];
	struct scratch *sc;
	struct src *x;
	struct rec *r;
	int rc = -1, keep, li;

	pthread_rwlock_rdlock(&s->lock);
	if ((sc = scratch_get(s)) == NULL)
		goto out;
	if (buf_puts(out, "{\"envelopes\":{\"batch\":[") == -1)
		goto out;
	x = src_lookup(s, q->id, q->idlen);
	if (x != NULL) {
		if (scratch_recs(sc, x->logs.n + x->other.n) == -1)
			goto out;
		ls[0] = &x->logs;
		ls[1] = &x->other;
		for (li = 0; li < 2; li++)
			for (r = ls[li]->head; r != NULL; r = r->next)
				if (r->ts >= q->start_time && r->ts < end &&
				    (q->kinds == 0 ||
				    (q->kinds & CQ_KIND_BIT(r->kind))))
					sc->recs[n++] = r;
		if (n > 1)
			qsort(sc->recs, n, sizeof(*sc->recs), rec_by_time);
	}
	for (i = 0; i < n && got < (size_t)q->limit; i++) {
		r = sc->recs[q->descending ? n - 1 - i : i];
		arena_reset(&sc->arena);
		if ((e = envelope_unpack(&sc->arena, r->data, r->len)) == NULL) {
			if (errno == ENOMEM)
				goto out;
			continue;	/* stored bytes that never decoded */
		}
		if (re != NULL) {
			if ((keep = name_filter(&sc->arena, e, re)) == -1)
				goto out;
			if (!keep)
				continue;
		}
		if ((got > 0 && buf_putc(out, ',') == -1) ||
		    json_encode_envelope(out, e) == -1)
			goto out;
		got++;
	}
	rc = buf_puts(out, "]}}");
out:
	pthread_rwlock_unlock(&s->lock);
	if (rc == -1)
		out->len = start_len;
	return rc;
}

static int
src_by_id(const void *a, const void *b)
{
	const struct src *x = *(const struct src *const *)a;
	const struct src *y = *(const struct src *const *)b;
	size_t n = x->idlen < y->idlen ? x->idlen : y->idlen;
	int c = memcmp(x->id, y->id, n);

	if (c != 0)
		return c;
	return (x->idlen > y->idlen) - (x->idlen < y->idlen);
}

int
store_meta(struct store *s, struct buf *out)
{
	size_t start_len = out->len, n = 0, i;
	struct src *x, **v = NULL;
	int64_t lo, hi;
	struct rec *r;
	int rc = -1, li;

	pthread_rwlock_rdlock(&s->lock);
	if (s->nsources > 0 && (v = malloc(s->nsources * sizeof(*v))) == NULL)
		goto out;
	for (x = s->lru_head; x != NULL; x = x->next)
		if (x->logs.n + x->other.n > 0)
			v[n++] = x;
	if (n > 1)
		qsort(v, n, sizeof(*v), src_by_id);
	if (buf_puts(out, "{\"meta\":{") == -1)
		goto out;
	for (i = 0; i < n; i++) {
		struct list *ls[2] = { &v[i]->logs, &v[i]->other };

		lo = INT64_MAX;
		hi = INT64_MIN;
		for (li = 0; li < 2; li++)
			for (r = ls[li]->head; r != NULL; r = r->next) {
				lo = r->ts < lo ? r->ts : lo;
				hi = r->ts > hi ? r->ts : hi;
			}
		if ((i > 0 && buf_putc(out, ',') == -1) ||
		    json_encode_string(out, v[i]->id, v[i]->idlen) == -1 ||
		    buf_printf(out, ":{\"count\":\"%zu\",\"expired\":\"%" PRIu64
		    "\",\"oldestTimestamp\":\"%" PRId64 "\","
		    "\"newestTimestamp\":\"%" PRId64 "\"}",
		    v[i]->logs.n + v[i]->other.n, v[i]->expired, lo, hi) == -1)
			goto out;
	}
	rc = buf_puts(out, "}}");
out:
	pthread_rwlock_unlock(&s->lock);
	free(v);
	if (rc == -1)
		out->len = start_len;
	return rc;
}

/* --- life ------------------------------------------------------------------ */

struct store *
store_new(const struct store_opts *o)
{
	pthread_rwlockattr_t at;
	struct store *s;
	size_t buckets = 16;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->o = *o;
	while (buckets < o->max_sources * 2 && buckets < ((size_t)1 << 30))
		buckets *= 2;
	s->table = calloc(buckets, sizeof(*s->table));
	if (s->table == NULL)
		goto fail;
	s->mask = buckets - 1;
	if (getrandom(s->key, sizeof(s->key), 0) != sizeof(s->key)) {
		s->key[0] = (uint64_t)(uintptr_t)s ^ 0x9e3779b97f4a7c15ULL;
		s->key[1] = (uint64_t)(uintptr_t)&buckets;
	}
	if (arena_init(&s->arena, 64 * 1024, 16 * o->max_frame +
	    1024 * 1024) == -1)
		goto fail;
	if (pthread_key_create(&s->tls, scratch_free) != 0) {
		arena_release(&s->arena);
		goto fail;
	}
	/* A steady stream of readers must not keep the writer out. */
	pthread_rwlockattr_init(&at);
	pthread_rwlockattr_setkind_np(&at,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->lock, &at);
	pthread_rwlockattr_destroy(&at);
	atomic_init(&s->cache_bytes, 0);
	return s;
fail:
	free(s->table);
	free(s);
	errno = ENOMEM;
	return NULL;
}

void
store_free(struct store *s)
{
	struct scratch *sc;

	if (s == NULL)
		return;
	while (s->lru_head != NULL)
		src_remove(s, s->lru_head, 0);
	sc = pthread_getspecific(s->tls);
	if (sc != NULL)
		scratch_free(sc);
	pthread_key_delete(s->tls);
	pthread_rwlock_destroy(&s->lock);
	arena_release(&s->arena);
	free(s->table);
	free(s);
}
