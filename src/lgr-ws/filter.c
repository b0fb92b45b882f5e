/* filter: subscription requests (v2 EgressRequest / EgressBatchRequest,
 * v1 SubscriptionRequest) to and from lgr-ws's sub_filter. */
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "grpcsrv.h"
#include "plumbing/doppler.pb-c.h"
#include "v2/egress.pb-c.h"

static char *
dup_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

void
sub_filter_free(struct sub_filter *f)
{
	size_t i, j;

	free(f->shard_id);
	free(f->app_id);
	for (i = 0; i < f->nsel; i++) {
		free(f->sel[i].source_id);
		free(f->sel[i].counter_name);
		for (j = 0; j < f->sel[i].ngauge_names; j++)
			free(f->sel[i].gauge_names[j]);
		free(f->sel[i].gauge_names);
	}
	free(f->sel);
	memset(f, 0, sizeof(*f));
}

static int
selector_from_pb(struct selector *sel, const Loggregator__V2__Selector *p)
{
	size_t i;

	sel->source_id = dup_or_null(p->source_id);
	switch (p->message_case) {
	case LOGGREGATOR__V2__SELECTOR__MESSAGE_LOG:
		sel->kind = SEL_LOG;
		break;
	case LOGGREGATOR__V2__SELECTOR__MESSAGE_COUNTER:
		sel->kind = SEL_COUNTER;
		sel->counter_name = dup_or_null(p->counter->name);
		break;
	case LOGGREGATOR__V2__SELECTOR__MESSAGE_GAUGE:
		sel->kind = SEL_GAUGE;
		if (p->gauge->n_names == 0)
			break;
		sel->gauge_names = calloc(p->gauge->n_names, sizeof(char *));
		if (sel->gauge_names == NULL)
			return -1;
		for (i = 0; i < p->gauge->n_names; i++) {
			sel->gauge_names[i] = strdup(p->gauge->names[i]);
			if (sel->gauge_names[i] == NULL)
				return -1;
			sel->ngauge_names++;
		}
		break;
	case LOGGREGATOR__V2__SELECTOR__MESSAGE_TIMER:
		sel->kind = SEL_TIMER;
		break;
	case LOGGREGATOR__V2__SELECTOR__MESSAGE_EVENT:
		sel->kind = SEL_EVENT;
		break;
	default:
		return 1;
	}
	return 0;
}

int
filter_from_egress_request(struct sub_filter *f, const uint8_t *p,
    size_t n, const char **why)
{
	Loggregator__V2__EgressBatchRequest *rq;
	Loggregator__V2__Selector **sels;
	size_t nsel, i;
	int rc = GRPC_OK;

	memset(f, 0, sizeof(*f));
	/* EgressRequest and EgressBatchRequest are the same message. */
	rq = loggregator__v2__egress_batch_request__unpack(NULL, n, p);
	if (rq == NULL) {
		*why = "request does not decode";
		return GRPC_INVALID_ARGUMENT;
	}
	sels = rq->selectors;
	nsel = rq->n_selectors;
	if (nsel == 0 && rq->legacy_selector != NULL) {
		sels = &rq->legacy_selector;
		nsel = 1;
	}
	if (nsel == 0) {
		*why = "Selectors cannot be empty";
		rc = GRPC_INVALID_ARGUMENT;
		goto out;
	}
	f->shard_id = dup_or_null(rq->shard_id);
	f->preferred_tags = rq->use_preferred_tags;
	f->sel = calloc(nsel, sizeof(*f->sel));
	if (f->sel == NULL)
		goto nomem;
	for (i = 0; i < nsel; i++) {
		int k = selector_from_pb(&f->sel[i], sels[i]);

		f->nsel++;
		if (k < 0)
			goto nomem;
		if (k > 0) {
			*why = "Selectors must have a Message";
			rc = GRPC_INVALID_ARGUMENT;
			goto out;
		}
	}
out:
	loggregator__v2__egress_batch_request__free_unpacked(rq, NULL);
	if (rc != GRPC_OK)
		sub_filter_free(f);
	return rc;
nomem:
	*why = "out of memory";
	rc = GRPC_RESOURCE_EXHAUSTED;
	goto out;
}

int
filter_from_subscription_request(struct sub_filter *f, const uint8_t *p,
    size_t n, const char **why)
{
	Plumbing__SubscriptionRequest *rq;

	memset(f, 0, sizeof(*f));
	rq = plumbing__subscription_request__unpack(NULL, n, p);
	if (rq == NULL) {
		*why = "request does not decode";
		return GRPC_INVALID_ARGUMENT;
	}
	f->shard_id = dup_or_null(rq->shardid);
	if (rq->filter != NULL) {
		f->app_id = dup_or_null(rq->filter->appid);
		if (rq->filter->message_case == PLUMBING__FILTER__MESSAGE_LOG)
			f->v1_class = V1_LOGS;
		else if (rq->filter->message_case ==
		    PLUMBING__FILTER__MESSAGE_METRIC)
			f->v1_class = V1_METRICS;
	}
	plumbing__subscription_request__free_unpacked(rq, NULL);
	return GRPC_OK;
}

uint8_t *
filter_to_subscription_request(const struct sub_filter *f, size_t *len)
{
	Plumbing__SubscriptionRequest rq = PLUMBING__SUBSCRIPTION_REQUEST__INIT;
	Plumbing__Filter fl = PLUMBING__FILTER__INIT;
	Plumbing__LogFilter lf = PLUMBING__LOG_FILTER__INIT;
	Plumbing__MetricFilter mf = PLUMBING__METRIC_FILTER__INIT;
	uint8_t *p;

	rq.shardid = f->shard_id ? f->shard_id : "";
	if (f->app_id != NULL || f->v1_class != V1_ALL) {
		fl.appid = f->app_id ? f->app_id : "";
		if (f->v1_class == V1_LOGS) {
			fl.message_case = PLUMBING__FILTER__MESSAGE_LOG;
			fl.log = &lf;
		} else if (f->v1_class == V1_METRICS) {
			fl.message_case = PLUMBING__FILTER__MESSAGE_METRIC;
			fl.metric = &mf;
		}
		rq.filter = &fl;
	}
	*len = plumbing__subscription_request__get_packed_size(&rq);
	if ((p = malloc(*len ? *len : 1)) != NULL)
		plumbing__subscription_request__pack(&rq, p);
	return p;
}

uint8_t *
filter_to_egress_request(const struct sub_filter *f, size_t *len)
{
	Loggregator__V2__EgressBatchRequest rq =
	    LOGGREGATOR__V2__EGRESS_BATCH_REQUEST__INIT;
	Loggregator__V2__Selector *sv = calloc(f->nsel + 1, sizeof(*sv));
	Loggregator__V2__Selector **sp = calloc(f->nsel + 1, sizeof(*sp));
	union {
		Loggregator__V2__LogSelector log;
		Loggregator__V2__CounterSelector counter;
		Loggregator__V2__GaugeSelector gauge;
		Loggregator__V2__TimerSelector timer;
		Loggregator__V2__EventSelector event;
	} *m = calloc(f->nsel + 1, sizeof(*m));
	uint8_t *p = NULL;
	size_t i;

	if (sv == NULL || sp == NULL || m == NULL)
		goto out;
	rq.shard_id = f->shard_id ? f->shard_id : "";
	rq.use_preferred_tags = f->preferred_tags;
	for (i = 0; i < f->nsel; i++) {
		const struct selector *s = &f->sel[i];

		loggregator__v2__selector__init(&sv[i]);
		sv[i].source_id = s->source_id ? s->source_id : "";
		switch (s->kind) {
		case SEL_LOG:
			loggregator__v2__log_selector__init(&m[i].log);
			sv[i].message_case = LOGGREGATOR__V2__SELECTOR__MESSAGE_LOG;
			sv[i].log = &m[i].log;
			break;
		case SEL_COUNTER:
			loggregator__v2__counter_selector__init(&m[i].counter);
			m[i].counter.name = s->counter_name ? s->counter_name : "";
			sv[i].message_case =
			    LOGGREGATOR__V2__SELECTOR__MESSAGE_COUNTER;
			sv[i].counter = &m[i].counter;
			break;
		case SEL_GAUGE:
			loggregator__v2__gauge_selector__init(&m[i].gauge);
			m[i].gauge.n_names = s->ngauge_names;
			m[i].gauge.names = s->gauge_names;
			sv[i].message_case = LOGGREGATOR__V2__SELECTOR__MESSAGE_GAUGE;
			sv[i].gauge = &m[i].gauge;
			break;
		case SEL_TIMER:
			loggregator__v2__timer_selector__init(&m[i].timer);
			sv[i].message_case = LOGGREGATOR__V2__SELECTOR__MESSAGE_TIMER;
			sv[i].timer = &m[i].timer;
			break;
		default:
			loggregator__v2__event_selector__init(&m[i].event);
			sv[i].message_case = LOGGREGATOR__V2__SELECTOR__MESSAGE_EVENT;
			sv[i].event = &m[i].event;
			break;
		}
		sp[i] = &sv[i];
	}
	rq.n_selectors = f->nsel;
	rq.selectors = sp;
	*len = loggregator__v2__egress_batch_request__get_packed_size(&rq);
	if ((p = malloc(*len ? *len : 1)) != NULL)
		loggregator__v2__egress_batch_request__pack(&rq, p);
out:
	free(sv);
	free(sp);
	free(m);
	return p;
}
