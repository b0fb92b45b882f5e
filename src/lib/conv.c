/* conv: v1 (dropsonde) <-> v2 (loggregator.v2) envelope conversion, field
 * for field as go-loggregator's conversion package (v9) does it. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "envelope.h"
#include "fmtnum.h"

/*
 * A decoded proto map seen the way Go sees it: one value per key, the last
 * on the wire winning. Kept sorted by key, bytewise, which is also the
 * order Go's deterministic marshal writes. Insertions and deletions are a
 * handful per envelope, so a sorted array beats a hash here.
 */
struct conv_kv {
	const char *key;
	const char *str;	/* string maps */
	const void *msg;	/* Value or GaugeValue maps; NULL for absent */
	size_t ord;		/* position on the wire */
};

struct conv_map {
	struct conv_kv *kv;
	size_t n;
	size_t cap;
};

static const char conv_empty[] = "";

/* Marks a LogMessage.message that is present but empty; see conv.h. */
static uint8_t conv_empty_bytes[1];

static const char *const conv_event_names[] = {
	[EVENTS__ENVELOPE__EVENT_TYPE__HttpStartStop] = "HttpStartStop",
	[EVENTS__ENVELOPE__EVENT_TYPE__LogMessage] = "LogMessage",
	[EVENTS__ENVELOPE__EVENT_TYPE__ValueMetric] = "ValueMetric",
	[EVENTS__ENVELOPE__EVENT_TYPE__CounterEvent] = "CounterEvent",
	[EVENTS__ENVELOPE__EVENT_TYPE__Error] = "Error",
	[EVENTS__ENVELOPE__EVENT_TYPE__ContainerMetric] = "ContainerMetric",
};

static const char *const conv_peer_names[] = {
	[EVENTS__PEER_TYPE__Client] = "Client",
	[EVENTS__PEER_TYPE__Server] = "Server",
};

static const char *const conv_method_names[] = {
	NULL, "GET", "POST", "PUT", "DELETE", "HEAD", "ACL",
	"BASELINE_CONTROL", "BIND", "CHECKIN", "CHECKOUT", "CONNECT", "COPY",
	"DEBUG", "LABEL", "LINK", "LOCK", "MERGE", "MKACTIVITY", "MKCALENDAR",
	"MKCOL", "MKREDIRECTREF", "MKWORKSPACE", "MOVE", "OPTIONS",
	"ORDERPATCH", "PATCH", "PRI", "PROPFIND", "PROPPATCH", "REBIND",
	"REPORT", "SEARCH", "SHOWMETHOD", "SPACEJUMP", "TEXTSEARCH", "TRACE",
	"TRACK", "UNBIND", "UNCHECKOUT", "UNLINK", "UNLOCK", "UPDATE",
	"UPDATEREDIRECTREF", "VERSION_CONTROL",
};

#define CONV_NELEM(x) (sizeof(x) / sizeof((x)[0]))

static const char *
conv_str(const char *s)
{
	return s != NULL ? s : conv_empty;
}

/* protobuf-c's structs want char *; conv never writes through these. */
static char *
conv_borrow(const char *s)
{
	return (char *)conv_str(s);
}

static void *
conv_array(struct arena *a, size_t n, size_t size)
{
	if (n != 0 && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return arena_zalloc(a, n * size);
}

/* Go's Enum.String(): the declared name, else the number in decimal. */
static const char *
conv_enum_name(struct arena *a, const char *const *names, size_t n, int v)
{
	if (v >= 0 && (size_t)v < n && names[v] != NULL)
		return names[v];
	return arena_printf(a, "%d", v);
}

/* Go's Enum_value[name]: 0 for a name that is not declared. */
static int
conv_enum_value(const char *const *names, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (names[i] != NULL && strcmp(names[i], name) == 0)
			return (int)i;
	return 0;
}

/*
 * strconv.ParseInt(s, 10, bits): an optional sign, then decimal digits and
 * nothing else (no spaces, no underscores with base 10). Out of range is
 * an error too, and every caller turns an error into 0.
 */
static int64_t
conv_go_atoi(const char *s, int bits)
{
	uint64_t lim, v = 0;
	int neg = 0;

	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (*s == '\0')
		return 0;
	lim = (uint64_t)1 << (bits - 1);	/* |min|; max is lim - 1 */
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		if (v > (lim - (uint64_t)(*s - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (!neg && v == lim)
		return 0;
	/* -(v - 1) - 1 reaches -lim without overflowing on the way. */
	if (neg && v != 0)
		return -(int64_t)(v - 1) - 1;
	return (int64_t)v;
}

/* Go's int32(v) for an int64: keep the low 32 bits, two's complement. */
static int32_t
conv_wrap32(int64_t v)
{
	uint32_t u = (uint32_t)v;

	return u <= INT32_MAX ? (int32_t)u : -(int32_t)(UINT32_MAX - u) - 1;
}

/*
 * Float to integer conversions as Go compiles them on amd64, where the
 * golden vectors were made. C leaves the out-of-range cases undefined; Go
 * gets the CPU's "integer indefinite" (the most negative value) from
 * CVTTSD2SQ/CVTTSD2SL, and builds uint64 from int64 around 2^63.
 */
static int64_t
conv_go_f64_i64(double x)
{
	if (x >= -0x1p63 && x < 0x1p63)
		return (int64_t)x;
	return INT64_MIN;
}

static uint64_t
conv_go_f64_u64(double x)
{
	if (x < 0x1p63)
		return (uint64_t)conv_go_f64_i64(x);
	return (uint64_t)conv_go_f64_i64(x - 0x1p63) | (UINT64_C(1) << 63);
}

static int32_t
conv_go_f64_i32(double x)
{
	if (x > -2147483649.0 && x < 2147483648.0)
		return (int32_t)x;
	return INT32_MIN;
}

/* fmt.Sprintf("%f", v): C's %f, except for Go's spelling of NaN and Inf. */
static const char *
conv_go_fmt_f(struct arena *a, double v)
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	return arena_printf(a, "%f", v);
}

/* The UUID's 16 little-endian bytes in hex, 8-4-4-4-12; zeros for NULL. */
static const char *
conv_uuid_text(struct arena *a, const Events__UUID *u)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t half[2];
	char *s, *p;
	int i, b;

	half[0] = u != NULL ? u->low : 0;
	half[1] = u != NULL ? u->high : 0;
	if ((s = arena_alloc(a, 37)) == NULL)
		return NULL;
	p = s;
	for (i = 0; i < 16; i++) {
		b = (int)(half[i / 8] >> (8 * (i % 8))) & 0xff;
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b >> 4];
		*p++ = hex[b & 0xf];
	}
	*p = '\0';
	return s;
}

static int
conv_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * tov1.go parseUUID + convertUUID: exactly 36 bytes, whose characters 8,
 * 13, 18 and 23 are skipped unread (dashes are not checked), the other 32
 * hex in either case. 1 and *u filled, 0 when it is not such a string.
 */
static int
conv_uuid_parse(const char *s, Events__UUID *u)
{
	uint64_t half[2] = { 0, 0 };
	int i, hi, lo;
	size_t at;

	if (strlen(s) != 36)
		return 0;
	for (i = 0, at = 0; i < 16; i++, at += 2) {
		if (at == 8 || at == 13 || at == 18 || at == 23)
			at++;
		if ((hi = conv_hexval(s[at])) < 0 ||
		    (lo = conv_hexval(s[at + 1])) < 0)
			return 0;
		half[i / 8] |= (uint64_t)(hi << 4 | lo) << (8 * (i % 8));
	}
	events__uuid__init(u);
	u->low = half[0];
	u->high = half[1];
	return 1;
}

/* Maps. */

static int
conv_kv_cmp(const void *x, const void *y)
{
	const struct conv_kv *p = x, *q = y;
	int c = strcmp(p->key, q->key);

	if (c != 0)
		return c;
	return p->ord < q->ord ? -1 : p->ord > q->ord;
}

static int
conv_map_init(struct arena *a, struct conv_map *m, size_t n)
{
	m->n = 0;
	m->cap = n < SIZE_MAX - 16 ? n + 16 : n;
	m->kv = conv_array(a, m->cap, sizeof(*m->kv));
	return m->kv != NULL ? 0 : -1;
}

static void
conv_map_add(struct conv_map *m, const char *key, const char *str,
    const void *msg)
{
	struct conv_kv *kv = &m->kv[m->n];

	kv->key = conv_str(key);
	kv->str = conv_str(str);
	kv->msg = msg;
	kv->ord = m->n++;
}

/* Sort what conv_map_add collected and keep the last of each key. */
static void
conv_map_seal(struct conv_map *m)
{
	size_t i, j;

	if (m->n < 2)
		return;
	qsort(m->kv, m->n, sizeof(*m->kv), conv_kv_cmp);
	for (i = 0, j = 0; i < m->n; i++) {
		if (i + 1 < m->n && strcmp(m->kv[i].key, m->kv[i + 1].key) == 0)
			continue;
		m->kv[j++] = m->kv[i];
	}
	m->n = j;
}

/* Index of key, or where it would go with *found 0. */
static size_t
conv_map_pos(const struct conv_map *m, const char *key, int *found)
{
	size_t lo = 0, hi = m->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(m->kv[mid].key, key);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

static const struct conv_kv *
conv_map_get(const struct conv_map *m, const char *key)
{
	int found;
	size_t i = conv_map_pos(m, key, &found);

	return found ? &m->kv[i] : NULL;
}

/* Set a string value, as Go's m[key] = s. */
static int
conv_map_set(struct arena *a, struct conv_map *m, const char *key,
    const char *s)
{
	struct conv_kv *kv;
	int found;
	size_t i;

	if (s == NULL)
		return -1;	/* a formatter ran out of arena */
	i = conv_map_pos(m, key, &found);
	if (!found) {
		if (m->n == m->cap) {
			if (m->cap > SIZE_MAX / 2 / sizeof(*kv)) {
				errno = ENOMEM;
				return -1;
			}
			kv = conv_array(a, m->cap * 2, sizeof(*kv));
			if (kv == NULL)
				return -1;
			memcpy(kv, m->kv, m->n * sizeof(*kv));
			m->kv = kv;
			m->cap *= 2;
		}
		memmove(&m->kv[i + 1], &m->kv[i], (m->n - i) * sizeof(*kv));
		m->n++;
		m->kv[i].key = key;
		m->kv[i].msg = NULL;
		m->kv[i].ord = 0;
	}
	m->kv[i].str = s;
	return 0;
}

static void
conv_map_del(struct conv_map *m, const char *key)
{
	int found;
	size_t i = conv_map_pos(m, key, &found);

	if (!found)
		return;
	memmove(&m->kv[i], &m->kv[i + 1], (m->n - i - 1) * sizeof(m->kv[0]));
	m->n--;
}

static const char *
conv_map_str(const struct conv_map *m, const char *key)
{
	const struct conv_kv *kv = conv_map_get(m, key);

	return kv != NULL ? kv->str : conv_empty;
}

/* Completeness. */

static int
conv_strs_set(char *const *v, size_t n)
{
	size_t i;

	if (n != 0 && v == NULL)
		return 0;
	for (i = 0; i < n; i++)
		if (v[i] == NULL)
			return 0;
	return 1;
}

/* strict_bytes: also take LogMessage.message with data NULL as unset,
 * which only conv_v2_to_v1 outputs carry with that meaning. */
static int
conv_v1_check(const Events__Envelope *v1, int strict_bytes)
{
	const Events__HttpStartStop *h = v1->httpstartstop;
	const Events__LogMessage *lm = v1->logmessage;
	size_t i;

	if (v1->origin == NULL)
		return 0;
	if (v1->n_tags != 0 && v1->tags == NULL)
		return 0;
	for (i = 0; i < v1->n_tags; i++)
		if (v1->tags[i] == NULL)
			return 0;
	if (h != NULL && (h->requestid == NULL || h->uri == NULL ||
	    h->remoteaddress == NULL || h->useragent == NULL ||
	    !conv_strs_set(h->forwarded, h->n_forwarded)))
		return 0;
	if (lm != NULL && lm->message.data == NULL &&
	    (strict_bytes || lm->message.len != 0))
		return 0;
	if (v1->valuemetric != NULL && (v1->valuemetric->name == NULL ||
	    v1->valuemetric->unit == NULL))
		return 0;
	if (v1->counterevent != NULL && v1->counterevent->name == NULL)
		return 0;
	if (v1->error != NULL && (v1->error->source == NULL ||
	    v1->error->message == NULL))
		return 0;
	if (v1->containermetric != NULL &&
	    v1->containermetric->applicationid == NULL)
		return 0;
	return 1;
}

int
conv_v1_complete(const Events__Envelope *v1)
{
	return v1 != NULL && conv_v1_check(v1, 1);
}

Events__Envelope *
conv_v1_unpack(struct arena *a, const void *p, size_t len)
{
	Events__Envelope *e;
	int failed = a->failed;

	a->failed = 0;
	e = (Events__Envelope *)protobuf_c_message_unpack(
	    &events__envelope__descriptor, &a->pb, len, p);
	if (e == NULL) {
		errno = a->failed ? ENOMEM : EBADMSG;
		a->failed |= failed;
		return NULL;
	}
	a->failed |= failed;
	if (!pb_message_sane(&e->base)) {
		errno = EBADMSG;
		return NULL;
	}
	if (e->logmessage != NULL && e->logmessage->message.data == NULL)
		e->logmessage->message.data = conv_empty_bytes;
	return e;
}

/* v1 -> v2. */

static Loggregator__V2__Gauge *
conv_gauge_new(struct arena *a, size_t n)
{
	Loggregator__V2__Gauge *g;
	Loggregator__V2__Gauge__MetricsEntry *ent;
	Loggregator__V2__GaugeValue *val;
	size_t i;

	if ((g = arena_alloc(a, sizeof(*g))) == NULL)
		return NULL;
	loggregator__v2__gauge__init(g);
	if ((g->metrics = conv_array(a, n, sizeof(*g->metrics))) == NULL ||
	    (ent = conv_array(a, n, sizeof(*ent))) == NULL ||
	    (val = conv_array(a, n, sizeof(*val))) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		loggregator__v2__gauge__metrics_entry__init(&ent[i]);
		loggregator__v2__gauge_value__init(&val[i]);
		ent[i].value = &val[i];
		g->metrics[i] = &ent[i];
	}
	return g;
}

static void
conv_gauge_put(Loggregator__V2__Gauge *g, const char *name, const char *unit,
    double v)
{
	Loggregator__V2__Gauge__MetricsEntry *ent = g->metrics[g->n_metrics++];

	ent->key = conv_borrow(name);
	ent->value->unit = conv_borrow(unit);
	ent->value->value = v;
}

static int
conv_set_gauge(Loggregator__V2__Envelope *e, Loggregator__V2__Gauge *g)
{
	if (g == NULL)
		return -1;
	e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE;
	e->gauge = g;
	return 0;
}

static int
conv_set_log(struct arena *a, Loggregator__V2__Envelope *e,
    ProtobufCBinaryData payload, Loggregator__V2__Log__Type type)
{
	Loggregator__V2__Log *log = arena_alloc(a, sizeof(*log));

	if (log == NULL)
		return -1;
	loggregator__v2__log__init(log);
	log->payload = payload;
	log->type = type;
	e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG;
	e->log = log;
	return 0;
}

static int
conv_from_log(struct arena *a, const Events__Envelope *v1,
    Loggregator__V2__Envelope *e, struct conv_map *t)
{
	const Events__LogMessage *lm = v1->logmessage;
	Loggregator__V2__Log__Type type = LOGGREGATOR__V2__LOG__TYPE__OUT;
	ProtobufCBinaryData none = { 0, NULL };

	if (conv_map_set(a, t, "source_type",
	    conv_str(lm ? lm->source_type : NULL)) == -1)
		return -1;
	e->instance_id = conv_borrow(lm ? lm->source_instance : NULL);
	if (lm != NULL && lm->app_id != NULL && lm->app_id[0] != '\0')
		e->source_id = lm->app_id;
	/* The v1 type goes by name: OUT and ERR map, anything else is OUT. */
	if (lm != NULL &&
	    lm->message_type == EVENTS__LOG_MESSAGE__MESSAGE_TYPE__ERR)
		type = LOGGREGATOR__V2__LOG__TYPE__ERR;
	return conv_set_log(a, e, lm ? lm->message : none, type);
}

static const char *
conv_join_lines(struct arena *a, char *const *v, size_t n)
{
	size_t i, len = 0, l;
	char *s, *p;

	for (i = 0; i < n; i++) {
		l = strlen(conv_str(v[i])) + 1;
		if (len > SIZE_MAX - l) {
			errno = ENOMEM;
			return NULL;
		}
		len += l;
	}
	if ((s = arena_alloc(a, len + 1)) == NULL)
		return NULL;
	for (i = 0, p = s; i < n; i++) {
		l = strlen(conv_str(v[i]));
		if (i > 0)
			*p++ = '\n';
		memcpy(p, conv_str(v[i]), l);
		p += l;
	}
	*p = '\0';
	return s;
}

static int
conv_from_http(struct arena *a, const Events__Envelope *v1,
    Loggregator__V2__Envelope *e, struct conv_map *t)
{
	static const Events__HttpStartStop dflt = EVENTS__HTTP_START_STOP__INIT;
	const Events__HttpStartStop *h = v1->httpstartstop;
	const Events__UUID *app;
	Loggregator__V2__Timer *tm;

	if (h == NULL)
		h = &dflt;	/* Go's getters on a nil body */
	app = h->applicationid;
	if (app != NULL && (app->low != 0 || app->high != 0)) {
		e->source_id = (char *)conv_uuid_text(a, app);
		if (e->source_id == NULL)
			return -1;
	}
	e->instance_id = arena_printf(a, "%" PRId32,
	    h->has_instanceindex ? h->instanceindex : 0);
	if (e->instance_id == NULL ||
	    (tm = arena_alloc(a, sizeof(*tm))) == NULL)
		return -1;
	loggregator__v2__timer__init(tm);
	tm->name = (char *)"http";
	tm->start = h->starttimestamp;
	tm->stop = h->stoptimestamp;
	e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER;
	e->timer = tm;
	if (conv_map_set(a, t, "request_id",
	    conv_uuid_text(a, h->requestid)) == -1 ||
	    conv_map_set(a, t, "peer_type", conv_enum_name(a, conv_peer_names,
	    CONV_NELEM(conv_peer_names), h->peertype)) == -1 ||
	    conv_map_set(a, t, "method", conv_enum_name(a, conv_method_names,
	    CONV_NELEM(conv_method_names), h->method)) == -1 ||
	    conv_map_set(a, t, "uri", conv_str(h->uri)) == -1 ||
	    conv_map_set(a, t, "remote_address",
	    conv_str(h->remoteaddress)) == -1 ||
	    conv_map_set(a, t, "user_agent", conv_str(h->useragent)) == -1 ||
	    conv_map_set(a, t, "status_code",
	    arena_printf(a, "%" PRId32, h->statuscode)) == -1 ||
	    conv_map_set(a, t, "content_length",
	    arena_printf(a, "%" PRId64, h->contentlength)) == -1 ||
	    conv_map_set(a, t, "routing_instance_id",
	    conv_str(h->instanceid)) == -1 ||
	    conv_map_set(a, t, "forwarded",
	    conv_join_lines(a, h->forwarded, h->n_forwarded)) == -1)
		return -1;
	return 0;
}

static int
conv_from_value(struct arena *a, const Events__Envelope *v1,
    Loggregator__V2__Envelope *e, const char *iid)
{
	const Events__ValueMetric *vm = v1->valuemetric;
	Loggregator__V2__Gauge *g = conv_gauge_new(a, 1);

	e->instance_id = conv_borrow(iid);	/* the tag stays */
	if (g != NULL)
		conv_gauge_put(g, vm ? vm->name : NULL, vm ? vm->unit : NULL,
		    vm ? vm->value : 0);
	return conv_set_gauge(e, g);
}

static int
conv_from_counter(struct arena *a, const Events__Envelope *v1,
    Loggregator__V2__Envelope *e, struct conv_map *t, const char *iid)
{
	const Events__CounterEvent *ce = v1->counterevent;
	Loggregator__V2__Counter *c = arena_alloc(a, sizeof(*c));

	if (c == NULL)
		return -1;
	e->instance_id = conv_borrow(iid);
	conv_map_del(t, "instance_id");	/* unlike ValueMetric */
	loggregator__v2__counter__init(c);
	if (ce != NULL) {
		c->name = conv_borrow(ce->name);
		c->delta = ce->delta;
		c->total = ce->has_total ? ce->total : 0;
	}
	e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER;
	e->counter = c;
	return 0;
}

static int
conv_from_error(struct arena *a, const Events__Envelope *v1,
    Loggregator__V2__Envelope *e, struct conv_map *t)
{
	const Events__Error *er = v1->error;
	const char *msg = conv_str(er ? er->message : NULL);
	const char *src = conv_str(er ? er->source : NULL);
	ProtobufCBinaryData payload;

	if (conv_map_set(a, t, "source", src) == -1 ||
	    conv_map_set(a, t, "code",
	    arena_printf(a, "%" PRId32, er ? er->code : 0)) == -1)
		return -1;
	payload.len = strlen(msg);
	payload.data = (uint8_t *)msg;
	return conv_set_log(a, e, payload, LOGGREGATOR__V2__LOG__TYPE__OUT);
}

static int
conv_from_container(struct arena *a, const Events__Envelope *v1,
    Loggregator__V2__Envelope *e)
{
	static const Events__ContainerMetric dflt =
	    EVENTS__CONTAINER_METRIC__INIT;
	const Events__ContainerMetric *cm = v1->containermetric;
	Loggregator__V2__Gauge *g;

	if (cm == NULL)
		cm = &dflt;
	if (cm->applicationid != NULL && cm->applicationid[0] != '\0')
		e->source_id = cm->applicationid;
	e->instance_id = arena_printf(a, "%" PRId32, cm->instanceindex);
	if (e->instance_id == NULL)
		return -1;
	if ((g = conv_gauge_new(a, 5)) != NULL) {
		conv_gauge_put(g, "cpu", "percentage", cm->cpupercentage);
		conv_gauge_put(g, "disk", "bytes", (double)cm->diskbytes);
		conv_gauge_put(g, "disk_quota", "bytes", (double)
		    (cm->has_diskbytesquota ? cm->diskbytesquota : 0));
		conv_gauge_put(g, "memory", "bytes", (double)cm->memorybytes);
		conv_gauge_put(g, "memory_quota", "bytes", (double)
		    (cm->has_memorybytesquota ? cm->memorybytesquota : 0));
	}
	return conv_set_gauge(e, g);
}

static int
conv_put_tags(struct arena *a, Loggregator__V2__Envelope *e,
    const struct conv_map *t, int preferred)
{
	Loggregator__V2__Envelope__TagsEntry *te;
	Loggregator__V2__Envelope__DeprecatedTagsEntry *de;
	Loggregator__V2__Value *val;
	size_t i;

	if (t->n == 0)
		return 0;
	if (preferred) {
		if ((e->tags = conv_array(a, t->n, sizeof(*e->tags))) == NULL ||
		    (te = conv_array(a, t->n, sizeof(*te))) == NULL)
			return -1;
		for (i = 0; i < t->n; i++) {
			loggregator__v2__envelope__tags_entry__init(&te[i]);
			te[i].key = (char *)t->kv[i].key;
			te[i].value = (char *)t->kv[i].str;
			e->tags[i] = &te[i];
		}
		e->n_tags = t->n;
		return 0;
	}
	if ((e->deprecated_tags = conv_array(a, t->n,
	    sizeof(*e->deprecated_tags))) == NULL ||
	    (de = conv_array(a, t->n, sizeof(*de))) == NULL ||
	    (val = conv_array(a, t->n, sizeof(*val))) == NULL)
		return -1;
	for (i = 0; i < t->n; i++) {
		loggregator__v2__envelope__deprecated_tags_entry__init(&de[i]);
		loggregator__v2__value__init(&val[i]);
		val[i].data_case = LOGGREGATOR__V2__VALUE__DATA_TEXT;
		val[i].text = (char *)t->kv[i].str;
		de[i].key = (char *)t->kv[i].key;
		de[i].value = &val[i];
		e->deprecated_tags[i] = &de[i];
	}
	e->n_deprecated_tags = t->n;
	return 0;
}

static int
conv_to_v2(const Events__Envelope *v1, int preferred, struct arena *a,
    Loggregator__V2__Envelope **out)
{
	Loggregator__V2__Envelope *e;
	const struct conv_kv *kv;
	const char *iid;
	struct conv_map t;
	size_t i;
	int rc;

	if ((e = arena_alloc(a, sizeof(*e))) == NULL ||
	    conv_map_init(a, &t, v1->n_tags) == -1)
		return -1;
	loggregator__v2__envelope__init(e);
	e->timestamp = v1->has_timestamp ? v1->timestamp : 0;
	for (i = 0; i < v1->n_tags; i++)
		conv_map_add(&t, v1->tags[i]->key, v1->tags[i]->value, NULL);
	conv_map_seal(&t);

	/* Go reads these two from the v1 map; the tags set below never
	 * touch them, so reading the copy now gives the same. */
	kv = conv_map_get(&t, "source_id");
	iid = conv_map_str(&t, "instance_id");
	if (kv != NULL)
		e->source_id = (char *)kv->str;
	else if ((e->source_id = arena_printf(a, "%s/%s",
	    conv_str(v1->deployment), conv_str(v1->job))) == NULL)
		return -1;

	if (conv_map_set(a, &t, "origin", conv_str(v1->origin)) == -1 ||
	    conv_map_set(a, &t, "deployment", conv_str(v1->deployment)) == -1 ||
	    conv_map_set(a, &t, "job", conv_str(v1->job)) == -1 ||
	    conv_map_set(a, &t, "index", conv_str(v1->index)) == -1 ||
	    conv_map_set(a, &t, "ip", conv_str(v1->ip)) == -1 ||
	    conv_map_set(a, &t, "__v1_type", conv_enum_name(a, conv_event_names,
	    CONV_NELEM(conv_event_names), v1->eventtype)) == -1)
		return -1;
	conv_map_del(&t, "source_id");

	switch (v1->eventtype) {
	case EVENTS__ENVELOPE__EVENT_TYPE__LogMessage:
		rc = conv_from_log(a, v1, e, &t);
		break;
	case EVENTS__ENVELOPE__EVENT_TYPE__HttpStartStop:
		rc = conv_from_http(a, v1, e, &t);
		break;
	case EVENTS__ENVELOPE__EVENT_TYPE__ValueMetric:
		rc = conv_from_value(a, v1, e, iid);
		break;
	case EVENTS__ENVELOPE__EVENT_TYPE__CounterEvent:
		rc = conv_from_counter(a, v1, e, &t, iid);
		break;
	case EVENTS__ENVELOPE__EVENT_TYPE__Error:
		rc = conv_from_error(a, v1, e, &t);
		break;
	case EVENTS__ENVELOPE__EVENT_TYPE__ContainerMetric:
		rc = conv_from_container(a, v1, e);
		break;
	default:
		rc = 0;	/* an undeclared type: tags, no message */
		break;
	}
	if (rc == -1 || conv_put_tags(a, e, &t, preferred) == -1)
		return -1;
	*out = e;
	return 0;
}

int
conv_v1_to_v2(const Events__Envelope *v1, int preferred_tags,
    struct arena *a, Loggregator__V2__Envelope **out)
{
	if (v1 == NULL || !conv_v1_check(v1, 0)) {
		errno = EINVAL;
		return -1;
	}
	return conv_to_v2(v1, preferred_tags, a, out);
}

/* EventUnmarshaller's valid(): the body named by eventType is there. */
static int
conv_agent_valid(const Events__Envelope *v1)
{
	switch (v1->eventtype) {
	case EVENTS__ENVELOPE__EVENT_TYPE__HttpStartStop:
		return v1->httpstartstop != NULL;
	case EVENTS__ENVELOPE__EVENT_TYPE__LogMessage:
		return v1->logmessage != NULL;
	case EVENTS__ENVELOPE__EVENT_TYPE__ValueMetric:
		return v1->valuemetric != NULL;
	case EVENTS__ENVELOPE__EVENT_TYPE__CounterEvent:
		return v1->counterevent != NULL;
	case EVENTS__ENVELOPE__EVENT_TYPE__Error:
		return v1->error != NULL;
	case EVENTS__ENVELOPE__EVENT_TYPE__ContainerMetric:
		return v1->containermetric != NULL;
	default:
		return 0;
	}
}

int
conv_v1_agent_to_v2(const Events__Envelope *v1, const struct conv_agent *ag,
    struct arena *a, Loggregator__V2__Envelope **out)
{
	static const struct conv_agent none;
	Events__Envelope e;
	Events__Envelope__TagsEntry *sid, **tags;
	const char *cur = NULL;
	size_t i;

	if (v1 == NULL || !conv_v1_check(v1, 0) || !conv_agent_valid(v1)) {
		errno = EINVAL;
		return -1;
	}
	if (ag == NULL)
		ag = &none;
	e = *v1;	/* a shallow copy to fill in; v1 stays as it was */
	if (e.deployment == NULL)
		e.deployment = conv_borrow(ag->deployment);
	if (e.job == NULL)
		e.job = conv_borrow(ag->job);
	if (e.index == NULL)
		e.index = conv_borrow(ag->index);
	if (e.ip == NULL)
		e.ip = conv_borrow(ag->ip);

	for (i = 0; i < v1->n_tags; i++)
		if (strcmp(conv_str(v1->tags[i]->key), "source_id") == 0)
			cur = conv_str(v1->tags[i]->value);
	if (cur == NULL || cur[0] == '\0') {
		/* Appended last, so it wins over an empty one before it. */
		if (v1->n_tags == SIZE_MAX ||
		    (tags = conv_array(a, v1->n_tags + 1,
		    sizeof(*tags))) == NULL ||
		    (sid = arena_alloc(a, sizeof(*sid))) == NULL)
			return -1;
		events__envelope__tags_entry__init(sid);
		sid->key = "source_id";
		sid->value = conv_borrow(v1->origin);
		if (v1->n_tags != 0)
			memcpy(tags, v1->tags, v1->n_tags * sizeof(*tags));
		tags[v1->n_tags] = sid;
		e.tags = tags;
		e.n_tags = v1->n_tags + 1;
	}
	return conv_to_v2(&e, 1, a, out);
}

/* v2 -> v1. */

/* What every v1 output of one v2 envelope shares. */
struct conv_v2in {
	const Loggregator__V2__Envelope *e;
	struct arena *a;
	struct conv_map tags;	/* e->tags */
	struct conv_map dep;	/* e->deprecated_tags */
};

/* A deprecated value as ToV1 writes it: 1 and *s set, 0 for a Value with
 * nothing set (Go skips those), -1 when the arena is full. */
static int
conv_value_text(struct arena *a, const Loggregator__V2__Value *v,
    const char **s)
{
	if (v == NULL)
		return 0;
	switch (v->data_case) {
	case LOGGREGATOR__V2__VALUE__DATA_TEXT:
		*s = conv_str(v->text);
		return 1;
	case LOGGREGATOR__V2__VALUE__DATA_INTEGER:
		*s = arena_printf(a, "%" PRId64, v->integer);
		break;
	case LOGGREGATOR__V2__VALUE__DATA_DECIMAL:
		*s = conv_go_fmt_f(a, v->decimal);
		break;
	default:
		return 0;
	}
	return *s != NULL ? 1 : -1;
}

/* getV2Tag: tags first, then deprecated_tags, else "". NULL when the
 * arena is full. */
static const char *
conv_v2_tag(struct conv_v2in *in, const char *key)
{
	const struct conv_kv *kv;
	const char *s;
	int rc;

	if ((kv = conv_map_get(&in->tags, key)) != NULL)
		return kv->str;
	if ((kv = conv_map_get(&in->dep, key)) == NULL)
		return conv_empty;
	rc = conv_value_text(in->a, kv->msg, &s);
	return rc == 1 ? s : rc == 0 ? conv_empty : NULL;
}

static int
conv_v2in_init(struct conv_v2in *in, const Loggregator__V2__Envelope *e,
    struct arena *a)
{
	size_t i;

	in->e = e;
	in->a = a;
	if (conv_map_init(a, &in->tags, e->n_tags) == -1 ||
	    conv_map_init(a, &in->dep, e->n_deprecated_tags) == -1)
		return -1;
	for (i = 0; i < e->n_tags; i++)
		if (e->tags[i] != NULL)
			conv_map_add(&in->tags, e->tags[i]->key,
			    e->tags[i]->value, NULL);
	for (i = 0; i < e->n_deprecated_tags; i++)
		if (e->deprecated_tags[i] != NULL)
			conv_map_add(&in->dep, e->deprecated_tags[i]->key,
			    NULL, e->deprecated_tags[i]->value);
	conv_map_seal(&in->tags);
	conv_map_seal(&in->dep);
	return 0;
}

/* convertTags plus source_id: every tag, then every deprecated value with
 * something set on top of it. Both maps are sorted: merge them. */
static int
conv_v1_tags(struct conv_v2in *in, struct conv_map *t)
{
	const struct conv_kv *tk = in->tags.kv, *dk = in->dep.kv;
	size_t i = 0, j = 0, nt = in->tags.n, nd = in->dep.n;
	const char *s;
	int c, rc;

	if (conv_map_init(in->a, t, nt + nd) == -1)
		return -1;
	while (i < nt || j < nd) {
		if (i == nt)
			c = 1;
		else if (j == nd)
			c = -1;
		else
			c = strcmp(tk[i].key, dk[j].key);
		if (c < 0) {
			t->kv[t->n++] = tk[i++];
			continue;
		}
		if ((rc = conv_value_text(in->a, dk[j].msg, &s)) == -1)
			return -1;
		if (rc == 1) {
			t->kv[t->n] = dk[j];
			t->kv[t->n++].str = s;
		} else if (c == 0)
			t->kv[t->n++] = tk[i];
		if (c == 0)
			i++;
		j++;
	}
	if (in->e->source_id != NULL && in->e->source_id[0] != '\0' &&
	    conv_map_set(in->a, t, "source_id", in->e->source_id) == -1)
		return -1;
	return 0;
}

/* createBaseV1 with the tags given; ToV1's final deletions done here. */
static Events__Envelope *
conv_v1_base(struct conv_v2in *in, struct conv_map *t,
    Events__Envelope__EventType type)
{
	static const char *const drop[] = {
		"__v1_type", "origin", "deployment", "job", "index", "ip",
	};
	Events__Envelope *v1 = arena_alloc(in->a, sizeof(*v1));
	Events__Envelope__TagsEntry *te;
	size_t i;

	if (v1 == NULL)
		return NULL;
	events__envelope__init(v1);
	v1->eventtype = type;
	v1->has_timestamp = 1;
	v1->timestamp = in->e->timestamp;
	if ((v1->origin = (char *)conv_v2_tag(in, "origin")) == NULL ||
	    (v1->deployment = (char *)conv_v2_tag(in, "deployment")) == NULL ||
	    (v1->job = (char *)conv_v2_tag(in, "job")) == NULL ||
	    (v1->index = (char *)conv_v2_tag(in, "index")) == NULL ||
	    (v1->ip = (char *)conv_v2_tag(in, "ip")) == NULL)
		return NULL;
	for (i = 0; i < CONV_NELEM(drop); i++)
		conv_map_del(t, drop[i]);
	if (t->n == 0)
		return v1;
	if ((v1->tags = conv_array(in->a, t->n, sizeof(*v1->tags))) == NULL ||
	    (te = conv_array(in->a, t->n, sizeof(*te))) == NULL)
		return NULL;
	for (i = 0; i < t->n; i++) {
		events__envelope__tags_entry__init(&te[i]);
		te[i].key = (char *)t->kv[i].key;
		te[i].value = (char *)t->kv[i].str;
		v1->tags[i] = &te[i];
	}
	v1->n_tags = t->n;
	return v1;
}

static Events__Envelope *
conv_to_error(struct conv_v2in *in, struct conv_map *t,
    const Loggregator__V2__Log *log)
{
	Events__Error *er = arena_alloc(in->a, sizeof(*er));
	Events__Envelope *v1;
	const char *code;

	if (er == NULL)
		return NULL;
	events__error__init(er);
	if ((er->source = (char *)conv_v2_tag(in, "source")) == NULL ||
	    (code = conv_v2_tag(in, "code")) == NULL)
		return NULL;
	er->code = conv_wrap32(conv_go_atoi(code, 64));
	/* A C string stops at the first NUL of the payload. */
	if (log->payload.len == 0)
		er->message = (char *)conv_empty;
	else if ((er->message = arena_strndup(in->a,
	    (const char *)log->payload.data, log->payload.len)) == NULL)
		return NULL;
	conv_map_del(t, "source");
	conv_map_del(t, "code");
	v1 = conv_v1_base(in, t, EVENTS__ENVELOPE__EVENT_TYPE__Error);
	if (v1 != NULL)
		v1->error = er;
	return v1;
}

static Events__Envelope *
conv_to_log(struct conv_v2in *in, struct conv_map *t)
{
	static const Loggregator__V2__Log dflt = LOGGREGATOR__V2__LOG__INIT;
	const Loggregator__V2__Log *log = in->e->log;
	const char *v1type;
	Events__LogMessage *lm;
	Events__Envelope *v1;

	if (log == NULL)
		log = &dflt;
	if ((v1type = conv_v2_tag(in, "__v1_type")) == NULL)
		return NULL;
	if (strcmp(v1type, "Error") == 0)
		return conv_to_error(in, t, log);
	if ((lm = arena_alloc(in->a, sizeof(*lm))) == NULL)
		return NULL;
	events__log_message__init(lm);
	/* Go decodes an empty proto3 payload as a nil slice, which leaves the
	 * required message unset: data NULL says so (conv.h). */
	if (log->payload.len != 0)
		lm->message = log->payload;
	lm->message_type = log->type == LOGGREGATOR__V2__LOG__TYPE__OUT ?
	    EVENTS__LOG_MESSAGE__MESSAGE_TYPE__OUT :
	    EVENTS__LOG_MESSAGE__MESSAGE_TYPE__ERR;
	lm->timestamp = in->e->timestamp;
	lm->app_id = conv_borrow(in->e->source_id);
	lm->source_instance = conv_borrow(in->e->instance_id);
	if ((lm->source_type = (char *)conv_v2_tag(in, "source_type")) == NULL)
		return NULL;
	conv_map_del(t, "source_type");
	v1 = conv_v1_base(in, t, EVENTS__ENVELOPE__EVENT_TYPE__LogMessage);
	if (v1 != NULL)
		v1->logmessage = lm;
	return v1;
}

static Events__Envelope *
conv_to_counter(struct conv_v2in *in, struct conv_map *t)
{
	const Loggregator__V2__Counter *c = in->e->counter;
	Events__CounterEvent *ce = arena_alloc(in->a, sizeof(*ce));
	Events__Envelope *v1;

	if (ce == NULL)
		return NULL;
	events__counter_event__init(ce);
	ce->name = conv_borrow(c ? c->name : NULL);
	ce->delta = c ? c->delta : 0;
	ce->has_total = 1;
	ce->total = c ? c->total : 0;
	if (in->e->instance_id != NULL && in->e->instance_id[0] != '\0' &&
	    conv_map_set(in->a, t, "instance_id", in->e->instance_id) == -1)
		return NULL;
	v1 = conv_v1_base(in, t, EVENTS__ENVELOPE__EVENT_TYPE__CounterEvent);
	if (v1 != NULL)
		v1->counterevent = ce;
	return v1;
}

static char **
conv_split_lines(struct arena *a, const char *s, size_t *n)
{
	const char *p, *nl;
	char **v;
	size_t i, k = 1;

	for (p = s; (p = strchr(p, '\n')) != NULL; p++)
		k++;
	if ((v = conv_array(a, k, sizeof(*v))) == NULL)
		return NULL;
	for (i = 0, p = s; i < k; i++, p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			nl = p + strlen(p);
		if ((v[i] = arena_strndup(a, p, (size_t)(nl - p))) == NULL)
			return NULL;
	}
	*n = k;
	return v;
}

static Events__Envelope *
conv_to_http(struct conv_v2in *in, struct conv_map *t)
{
	static const char *const consumed[] = {
		"peer_type", "method", "request_id", "uri", "remote_address",
		"user_agent", "status_code", "content_length",
		"routing_instance_id", "forwarded",
	};
	static const Loggregator__V2__Timer dflt = LOGGREGATOR__V2__TIMER__INIT;
	const Loggregator__V2__Timer *tm = in->e->timer;
	Events__HttpStartStop *h = arena_alloc(in->a, sizeof(*h));
	Events__UUID *req, *app;
	Events__Envelope *v1;
	const char *s[CONV_NELEM(consumed)];
	size_t i;

	if (tm == NULL)
		tm = &dflt;
	if (h == NULL || (req = arena_alloc(in->a, sizeof(*req))) == NULL ||
	    (app = arena_alloc(in->a, sizeof(*app))) == NULL)
		return NULL;
	for (i = 0; i < CONV_NELEM(consumed); i++)
		if ((s[i] = conv_v2_tag(in, consumed[i])) == NULL)
			return NULL;
	events__http_start_stop__init(h);
	h->starttimestamp = tm->start;
	h->stoptimestamp = tm->stop;
	/* Without a UUID in request_id the required requestId stays NULL and
	 * the envelope fails conv_v1_complete, as Go's fails Marshal. */
	h->requestid = conv_uuid_parse(s[2], req) ? req : NULL;
	h->applicationid = conv_uuid_parse(conv_str(in->e->source_id), app) ?
	    app : NULL;
	h->peertype = conv_enum_value(conv_peer_names,
	    CONV_NELEM(conv_peer_names), s[0]);
	h->method = conv_enum_value(conv_method_names,
	    CONV_NELEM(conv_method_names), s[1]);
	h->uri = (char *)s[3];
	h->remoteaddress = (char *)s[4];
	h->useragent = (char *)s[5];
	h->statuscode = conv_wrap32(conv_go_atoi(s[6], 64));
	h->contentlength = conv_go_atoi(s[7], 64);
	h->has_instanceindex = 1;
	h->instanceindex = (int32_t)conv_go_atoi(conv_str(in->e->instance_id),
	    32);
	h->instanceid = (char *)s[8];
	if ((h->forwarded = conv_split_lines(in->a, s[9],
	    &h->n_forwarded)) == NULL)
		return NULL;
	for (i = 0; i < CONV_NELEM(consumed); i++)
		conv_map_del(t, consumed[i]);
	v1 = conv_v1_base(in, t, EVENTS__ENVELOPE__EVENT_TYPE__HttpStartStop);
	if (v1 != NULL)
		v1->httpstartstop = h;
	return v1;
}

/* A metric value; a map entry with no value is Go's empty GaugeValue. */
static double
conv_metric(const struct conv_kv *kv)
{
	const Loggregator__V2__GaugeValue *gv = kv->msg;

	return gv != NULL ? gv->value : 0;
}

static const char *
conv_metric_unit(const struct conv_kv *kv)
{
	const Loggregator__V2__GaugeValue *gv = kv->msg;

	return gv != NULL ? conv_str(gv->unit) : conv_empty;
}

/* tryConvertContainerMetric: not exactly one metric, and all five there,
 * each with a unit or a non-zero value. 1 and *out set, 0 when it does not
 * apply, -1 when the arena is full. */
static int
conv_to_container(struct conv_v2in *in, struct conv_map *t,
    const struct conv_map *m, Events__Envelope **out)
{
	static const char *const need[] = {
		"cpu", "memory", "disk", "memory_quota", "disk_quota",
	};
	const struct conv_kv *kv[CONV_NELEM(need)], *idx;
	Events__ContainerMetric *cm;
	Events__Envelope *v1;
	size_t i;

	if (m->n == 1)
		return 0;
	for (i = 0; i < CONV_NELEM(need); i++) {
		kv[i] = conv_map_get(m, need[i]);
		if (kv[i] == NULL || (conv_metric_unit(kv[i])[0] == '\0' &&
		    conv_metric(kv[i]) == 0))
			return 0;
	}
	if ((cm = arena_alloc(in->a, sizeof(*cm))) == NULL)
		return -1;
	events__container_metric__init(cm);
	cm->applicationid = conv_borrow(in->e->source_id);
	if ((idx = conv_map_get(m, "instance_index")) != NULL)
		cm->instanceindex = conv_go_f64_i32(conv_metric(idx));
	else
		cm->instanceindex = (int32_t)conv_go_atoi(
		    conv_str(in->e->instance_id), 32);
	cm->cpupercentage = conv_metric(kv[0]);
	cm->memorybytes = conv_go_f64_u64(conv_metric(kv[1]));
	cm->diskbytes = conv_go_f64_u64(conv_metric(kv[2]));
	cm->has_memorybytesquota = 1;
	cm->memorybytesquota = conv_go_f64_u64(conv_metric(kv[3]));
	cm->has_diskbytesquota = 1;
	cm->diskbytesquota = conv_go_f64_u64(conv_metric(kv[4]));
	v1 = conv_v1_base(in, t, EVENTS__ENVELOPE__EVENT_TYPE__ContainerMetric);
	if (v1 == NULL)
		return -1;
	v1->containermetric = cm;
	*out = v1;
	return 1;
}

static int
conv_to_gauge(struct conv_v2in *in, struct conv_map *t,
    Events__Envelope ***out, size_t *n)
{
	const Loggregator__V2__Gauge *g = in->e->gauge;
	Events__ValueMetric *vm;
	Events__Envelope **v, *base;
	struct conv_map m;
	size_t i, nm = g != NULL ? g->n_metrics : 0;
	int rc;

	if (conv_map_init(in->a, &m, nm) == -1)
		return -1;
	for (i = 0; i < nm; i++)
		if (g->metrics[i] != NULL)
			conv_map_add(&m, g->metrics[i]->key, NULL,
			    g->metrics[i]->value);
	conv_map_seal(&m);
	if ((rc = conv_to_container(in, t, &m, &base)) != 0) {
		if (rc == -1 || (v = arena_alloc(in->a, sizeof(*v))) == NULL)
			return -1;
		v[0] = base;
		*out = v;
		*n = 1;
		return 0;
	}
	if (m.n == 0)
		return 0;
	/* Every ValueMetric carries the same tags, so they share one list. */
	if (in->e->instance_id != NULL && in->e->instance_id[0] != '\0' &&
	    conv_map_set(in->a, t, "instance_id", in->e->instance_id) == -1)
		return -1;
	if ((v = conv_array(in->a, m.n, sizeof(*v))) == NULL ||
	    (vm = conv_array(in->a, m.n, sizeof(*vm))) == NULL ||
	    (base = conv_v1_base(in, t,
	    EVENTS__ENVELOPE__EVENT_TYPE__ValueMetric)) == NULL)
		return -1;
	for (i = 0; i < m.n; i++) {
		if ((v[i] = arena_alloc(in->a, sizeof(*v[i]))) == NULL)
			return -1;
		*v[i] = *base;
		events__value_metric__init(&vm[i]);
		vm[i].name = (char *)m.kv[i].key;
		vm[i].unit = (char *)conv_metric_unit(&m.kv[i]);
		vm[i].value = conv_metric(&m.kv[i]);
		v[i]->valuemetric = &vm[i];
	}
	*out = v;
	*n = m.n;
	return 0;
}

int
conv_v2_to_v1(const Loggregator__V2__Envelope *v2, struct arena *a,
    Events__Envelope ***out, size_t *n)
{
	struct conv_v2in in;
	struct conv_map t;
	Events__Envelope *one, **v;

	*out = NULL;
	*n = 0;
	switch (v2->message_case) {
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG:
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER:
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE:
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER:
		break;
	default:
		return 0;	/* events and empty envelopes: no v1 form */
	}
	if (conv_v2in_init(&in, v2, a) == -1 || conv_v1_tags(&in, &t) == -1)
		return -1;
	switch (v2->message_case) {
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG:
		one = conv_to_log(&in, &t);
		break;
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER:
		one = conv_to_counter(&in, &t);
		break;
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER:
		one = conv_to_http(&in, &t);
		break;
	default:
		if (conv_to_gauge(&in, &t, out, n) == -1) {
			*out = NULL;
			*n = 0;
			return -1;
		}
		return 0;
	}
	if (one == NULL || (v = arena_alloc(a, sizeof(*v))) == NULL)
		return -1;
	v[0] = one;
	*out = v;
	*n = 1;
	return 0;
}

/* A deprecated tag's value as text. */
static const char *
value_text(const Loggregator__V2__Value *v, struct arena *a)
{
	char num[FMT_DOUBLE_MAX];

	if (v == NULL)
		return "";
	switch (v->data_case) {
	case LOGGREGATOR__V2__VALUE__DATA_TEXT:
		return v->text;
	case LOGGREGATOR__V2__VALUE__DATA_INTEGER:
		return arena_printf(a, "%" PRId64, v->integer);
	case LOGGREGATOR__V2__VALUE__DATA_DECIMAL:
		fmt_double(num, sizeof(num), v->decimal, FMT_GO_G);
		return arena_strdup(a, num);
	default:
		return "";
	}
}

int
conv_converge_tags(Loggregator__V2__Envelope *e, int preferred,
    struct arena *a)
{
	size_t i, j, n = e->n_tags + e->n_deprecated_tags;

	if (preferred) {
		Loggregator__V2__Envelope__TagsEntry **t;

		if (e->n_deprecated_tags == 0)
			return 0;
		t = arena_alloc(a, n * sizeof(*t));
		if (t == NULL)
			return -1;
		if (e->n_tags > 0)
			memcpy(t, e->tags, e->n_tags * sizeof(*t));
		n = e->n_tags;
		for (i = 0; i < e->n_deprecated_tags; i++) {
			Loggregator__V2__Envelope__DeprecatedTagsEntry *d =
			    e->deprecated_tags[i];
			Loggregator__V2__Envelope__TagsEntry *te;
			const char *v;

			/* A Value with nothing set is dropped, as in Go. */
			if (d->value == NULL || d->value->data_case ==
			    LOGGREGATOR__V2__VALUE__DATA__NOT_SET)
				continue;
			v = value_text(d->value, a);
			te = arena_alloc(a, sizeof(*te));
			if (te == NULL || v == NULL)
				return -1;
			loggregator__v2__envelope__tags_entry__init(te);
			te->key = d->key;
			te->value = (char *)v;
			for (j = 0; j < n; j++)
				if (strcmp(t[j]->key, d->key) == 0)
					break;
			t[j] = te;
			if (j == n)
				n++;
		}
		e->tags = t;
		e->n_tags = n;
		e->deprecated_tags = NULL;
		e->n_deprecated_tags = 0;
		return 0;
	} else {
		Loggregator__V2__Envelope__DeprecatedTagsEntry **t;

		if (e->n_tags == 0)
			return 0;
		t = arena_alloc(a, n * sizeof(*t));
		if (t == NULL)
			return -1;
		if (e->n_deprecated_tags > 0)
			memcpy(t, e->deprecated_tags,
			    e->n_deprecated_tags * sizeof(*t));
		n = e->n_deprecated_tags;
		for (i = 0; i < e->n_tags; i++) {
			Loggregator__V2__Envelope__DeprecatedTagsEntry *d;
			Loggregator__V2__Value *v;

			d = arena_alloc(a, sizeof(*d));
			v = arena_alloc(a, sizeof(*v));
			if (d == NULL || v == NULL)
				return -1;
			loggregator__v2__envelope__deprecated_tags_entry__init(d);
			loggregator__v2__value__init(v);
			v->data_case = LOGGREGATOR__V2__VALUE__DATA_TEXT;
			v->text = e->tags[i]->value;
			d->key = e->tags[i]->key;
			d->value = v;
			for (j = 0; j < n; j++)
				if (strcmp(t[j]->key, d->key) == 0)
					break;
			t[j] = d;
			if (j == n)
				n++;
		}
		e->deprecated_tags = t;
		e->n_deprecated_tags = n;
		e->tags = NULL;
		e->n_tags = 0;
		return 0;
	}
}
