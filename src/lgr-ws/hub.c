/* hub: the local feed. Envelopes read from stdin go to every subscriber
 * whose filter takes them; subscribers that share a shard id (and the
 * same filter) form a group, and each envelope goes to one member of a
 * group, in turn. v1 subscribers get each envelope converted to v1 once,
 * however many of them there are. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "conv.h"
#include "envelope.h"
#include "log.h"
#include "pbwire.h"
#include "wsd.h"

#define V1_OUT_MAX (1 << 20)

struct sub_group {
	struct sub_group *prev, *next;
	enum sub_form form;
	char *key;		/* shard id and filter; NULL: one subscriber */
	struct sub *members;	/* circular through sub->next/prev */
	struct sub *turn;	/* the member the next envelope goes to */
	size_t n;
	struct sub_filter *f;	/* the first member's */
};

struct hub {
	struct wsd *d;
	struct sub_group *groups;
	size_t nv1, nv2;	/* groups of each form */
	struct arena a;		/* one envelope's decoded forms */
	struct sub **woken;	/* subscribers to wake at the flush */
	size_t nwoken, cap_woken;
	unsigned char *v1buf;	/* packed v1 envelopes of one v2 */
};

struct hub *
hub_new(struct wsd *d)
{
	struct hub *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	h->d = d;
	if (arena_init(&h->a, 64 * 1024, 64u << 20) == -1 ||
	    (h->v1buf = malloc(V1_OUT_MAX)) == NULL) {
		free(h);
		return NULL;
	}
	return h;
}

void
hub_free(struct hub *h)
{
	if (h == NULL)
		return;
	arena_release(&h->a);
	free(h->woken);
	free(h->v1buf);
	free(h);
}

/* One string of a group key, length first, so that no text can pass for
 * another's separators; "-" for none (any). */
static int
key_str(struct buf *b, const char *s)
{
	if (s == NULL)
		return buf_putc(b, '-');
	return buf_printf(b, "%zu:%s", strlen(s), s);
}

/* A canonical text of what a sharded subscriber asks for: members of a
 * group must want the same envelopes, so two filters that differ in
 * anything (a counter named "*" and any counter, say) get two keys. */
static char *
group_key(const struct sub *s)
{
	const struct sub_filter *f = &s->f;
	struct buf b;
	size_t i, j;
	int rc;		/* -1 once any part failed to fit */

	if (buf_init(&b, 256, 64 * 1024) == -1)
		return NULL;
	rc = buf_printf(&b, "%d|", s->form) | key_str(&b, f->shard_id);
	if (s->form == SUB_V1) {
		rc |= key_str(&b, f->app_id) |
		    buf_printf(&b, "|%d", f->v1_class);
	} else {
		for (i = 0; i < f->nsel; i++) {
			const struct selector *sel = &f->sel[i];

			rc |= buf_printf(&b, "[%u|", sel->kind) |
			    key_str(&b, sel->source_id) |
			    key_str(&b, sel->counter_name) |
			    buf_printf(&b, "%zu|", sel->ngauge_names);
			for (j = 0; j < sel->ngauge_names; j++)
				rc |= key_str(&b, sel->gauge_names[j]);
			rc |= buf_putc(&b, ']');
		}
	}
	rc |= buf_putc(&b, '\0');
	if (rc != 0) {
		buf_release(&b);
		return NULL;
	}
	return b.data;		/* the buffer is the string */
}

int
hub_attach(struct hub *h, struct sub *s, const char **why)
{
	struct sub_group *g = NULL;
	char *key = NULL;

	if (s->f.shard_id != NULL && s->f.shard_id[0] != '\0') {
		if ((key = group_key(s)) == NULL)
			goto nomem;
		for (g = h->groups; g; g = g->next)
			if (g->key && strcmp(g->key, key) == 0)
				break;
	}
	if (g == NULL) {
		if ((g = calloc(1, sizeof(*g))) == NULL)
			goto nomem;
		g->form = s->form;
		g->key = key;
		key = NULL;
		g->f = &s->f;
		g->next = h->groups;
		if (h->groups)
			h->groups->prev = g;
		h->groups = g;
		if (s->form == SUB_V1)
			h->nv1++;
		else
			h->nv2++;
	}
	free(key);
	if (g->members == NULL) {
		s->next = s->prev = s;
		g->members = g->turn = s;
	} else {
		s->next = g->members;
		s->prev = g->members->prev;
		s->prev->next = s;
		g->members->prev = s;
	}
	g->n++;
	s->group = g;
	return 0;
nomem:
	free(key);
	*why = "out of memory";
	return -1;
}

void
hub_detach(struct hub *h, struct sub *s)
{
	struct sub_group *g = s->group;
	size_t i;

	if (g == NULL)
		return;
	for (i = 0; i < h->nwoken; i++)
		if (h->woken[i] == s)
			h->woken[i] = NULL;
	s->group = NULL;
	if (--g->n > 0) {
		s->prev->next = s->next;
		s->next->prev = s->prev;
		if (g->members == s)
			g->members = s->next;
		if (g->turn == s)
			g->turn = s->next;
		if (g->f == &s->f)
			g->f = &g->members->f;
		return;
	}
	if (g->prev)
		g->prev->next = g->next;
	else
		h->groups = g->next;
	if (g->next)
		g->next->prev = g->prev;
	if (g->form == SUB_V1)
		h->nv1--;
	else
		h->nv2--;
	free(g->key);
	free(g);
}

static void
hub_wake_later(struct hub *h, struct sub *s)
{
	if (s->feed_state != NULL)
		return;		/* already on the list */
	if (h->nwoken == h->cap_woken) {
		size_t cap = h->cap_woken ? 2 * h->cap_woken : 64;
		struct sub **w = realloc(h->woken, cap * sizeof(*w));

		if (w == NULL) {
			s->ops->wake(s);	/* now rather than never */
			return;
		}
		h->woken = w;
		h->cap_woken = cap;
	}
	s->feed_state = s;
	h->woken[h->nwoken++] = s;
}

void
hub_flush(struct hub *h)
{
	size_t i;

	/* A wake may detach a subscriber (and blank its slot). */
	for (i = 0; i < h->nwoken; i++) {
		struct sub *s = h->woken[i];

		if (s == NULL)
			continue;
		s->feed_state = NULL;
		s->ops->wake(s);
	}
	h->nwoken = 0;
}

static void
group_deliver(struct hub *h, struct sub_group *g, const uint8_t *p, size_t len)
{
	struct sub *s = g->turn;

	if (g->key != NULL)
		g->turn = s->next;	/* sharded: one member, in turn */
	if (sub_offer(h->d, s, p, len))
		hub_wake_later(h, s);
}

/* --- v2 selectors -------------------------------------------------------- */

static unsigned
kind_bit(int kind)
{
	switch (kind) {
	case PB_ENV_LOG:
		return SEL_LOG;
	case PB_ENV_COUNTER:
		return SEL_COUNTER;
	case PB_ENV_GAUGE:
		return SEL_GAUGE;
	case PB_ENV_TIMER:
		return SEL_TIMER;
	case PB_ENV_EVENT:
		return SEL_EVENT;
	}
	return 0;
}

/* What a v2 envelope is, read once for every group. */
struct env_view {
	const uint8_t *p;
	size_t len;
	const char *sid;
	size_t sidn;
	unsigned kind;
	Loggregator__V2__Envelope *e;	/* decoded when a selector needs it */
	int decoded;
};

static Loggregator__V2__Envelope *
view_decode(struct hub *h, struct env_view *v)
{
	if (!v->decoded) {
		v->decoded = 1;
		v->e = envelope_unpack(&h->a, v->p, v->len);
	}
	return v->e;
}

static int
gauge_keys_equal(const Loggregator__V2__Gauge *g, char *const *names,
    size_t n)
{
	size_t i, j;

	if (g == NULL || g->n_metrics != n)
		return 0;
	for (i = 0; i < n; i++) {
		for (j = 0; j < g->n_metrics; j++)
			if (strcmp(g->metrics[j]->key, names[i]) == 0)
				break;
		if (j == g->n_metrics)
			return 0;
	}
	return 1;
}

static int
selector_match(struct hub *h, const struct selector *sel,
    struct env_view *v)
{
	Loggregator__V2__Envelope *e;

	if (!(sel->kind & v->kind))
		return 0;
	if (sel->source_id != NULL && (strlen(sel->source_id) != v->sidn ||
	    memcmp(sel->source_id, v->sid, v->sidn) != 0))
		return 0;
	if (sel->kind == SEL_COUNTER && sel->counter_name != NULL) {
		e = view_decode(h, v);
		return e != NULL && e->counter != NULL &&
		    strcmp(e->counter->name, sel->counter_name) == 0;
	}
	if (sel->kind == SEL_GAUGE && sel->gauge_names != NULL) {
		e = view_decode(h, v);
		return e != NULL && gauge_keys_equal(e->gauge,
		    sel->gauge_names, sel->ngauge_names);
	}
	return 1;
}

static int
filter_match_v2(struct hub *h, const struct sub_filter *f,
    struct env_view *v)
{
	size_t i;

	for (i = 0; i < f->nsel; i++)
		if (selector_match(h, &f->sel[i], v))
			return 1;
	return 0;
}

/* --- v1 ----------------------------------------------------------------- */

/* The app id doppler's v1 router keys an envelope by. */
static const char *
v1_app_id(const Events__Envelope *v1, char *uuid, size_t n)
{
	switch (v1->eventtype) {
	case EVENTS__ENVELOPE__EVENT_TYPE__LogMessage:
		if (v1->logmessage && v1->logmessage->app_id &&
		    v1->logmessage->app_id[0])
			return v1->logmessage->app_id;
		break;
	case EVENTS__ENVELOPE__EVENT_TYPE__ContainerMetric:
		if (v1->containermetric && v1->containermetric->applicationid &&
		    v1->containermetric->applicationid[0])
			return v1->containermetric->applicationid;
		break;
	case EVENTS__ENVELOPE__EVENT_TYPE__HttpStartStop:
		if (v1->httpstartstop && v1->httpstartstop->applicationid) {
			const Events__UUID *u = v1->httpstartstop->applicationid;
			unsigned char b[16];
			int i;

			for (i = 0; i < 8; i++) {
				b[i] = (unsigned char)(u->low >> (8 * i));
				b[8 + i] = (unsigned char)(u->high >> (8 * i));
			}
			snprintf(uuid, n, "%02x%02x%02x%02x-%02x%02x-%02x%02x-"
			    "%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
			    b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
			    b[10], b[11], b[12], b[13], b[14], b[15]);
			return uuid;
		}
		break;
	default:
		break;
	}
	return "system";
}

static void
hub_publish_v1(struct hub *h, struct env_view *v)
{
	Loggregator__V2__Envelope *e = view_decode(h, v);
	Events__Envelope **out;
	size_t n, i;
	struct sub_group *g;

	if (e == NULL || conv_v2_to_v1(e, &h->a, &out, &n) == -1)
		return;
	for (i = 0; i < n; i++) {
		char uuid[40];
		const char *app;
		enum v1_class cls;
		size_t len;

		if (!conv_v1_complete(out[i]))
			continue;	/* Go cannot marshal it: doppler drops it */
		len = events__envelope__get_packed_size(out[i]);
		if (len > V1_OUT_MAX)
			continue;
		events__envelope__pack(out[i], h->v1buf);
		app = v1_app_id(out[i], uuid, sizeof(uuid));
		cls = out[i]->eventtype == EVENTS__ENVELOPE__EVENT_TYPE__LogMessage
		    ? V1_LOGS : V1_METRICS;
		for (g = h->groups; g; g = g->next) {
			const struct sub_filter *f = g->f;

			if (g->form != SUB_V1)
				continue;
			if (f->v1_class != V1_ALL && f->v1_class != cls)
				continue;
			if (f->app_id != NULL && strcmp(f->app_id, app) != 0)
				continue;
			group_deliver(h, g, h->v1buf, len);
		}
	}
}

void
hub_publish(struct hub *h, const uint8_t *env, size_t len)
{
	struct env_view v = { .p = env, .len = len };
	struct sub_group *g;
	int k;

	if (h->groups == NULL)
		return;
	arena_reset(&h->a);
	if (h->nv2 > 0) {
		k = envelope_peek_kind(env, len);
		if (k <= 0)
			return;		/* malformed or empty: nothing selects it */
		v.kind = kind_bit(k);
		if (envelope_peek_source_id(env, len, &v.sid, &v.sidn) != 1) {
			v.sid = "";
			v.sidn = 0;
		}
		for (g = h->groups; g; g = g->next)
			if (g->form == SUB_V2 && filter_match_v2(h, g->f, &v))
				group_deliver(h, g, env, len);
	}
	if (h->nv1 > 0)
		hub_publish_v1(h, &v);
}
