/* fuzz_filter: subscription requests (v2 EgressBatchRequest, v1
 * SubscriptionRequest) into lgr-ws's filter and back. A request that is
 * accepted must encode again, and the encoding must decode to the same
 * filter. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lgr-ws/filter.c"

static int
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static int
same_filter(const struct sub_filter *a, const struct sub_filter *b)
{
	size_t i, j;

	if (!same_str(a->shard_id, b->shard_id) || !same_str(a->app_id,
	    b->app_id) || a->v1_class != b->v1_class || a->nsel != b->nsel ||
	    a->preferred_tags != b->preferred_tags)
		return 0;
	for (i = 0; i < a->nsel; i++) {
		const struct selector *x = &a->sel[i], *y = &b->sel[i];

		if (!same_str(x->source_id, y->source_id) || x->kind != y->kind ||
		    !same_str(x->counter_name, y->counter_name) ||
		    x->ngauge_names != y->ngauge_names)
			return 0;
		for (j = 0; j < x->ngauge_names; j++)
			if (strcmp(x->gauge_names[j], y->gauge_names[j]) != 0)
				return 0;
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sub_filter f, g;
	const char *why;
	uint8_t *enc;
	size_t len;
	int v2;

	if (size < 1)
		return 0;
	v2 = data[0] & 1;
	data++;
	size--;
	if ((v2 ? filter_from_egress_request(&f, data, size, &why) :
	    filter_from_subscription_request(&f, data, size, &why)) != GRPC_OK)
		return 0;
	enc = v2 ? filter_to_egress_request(&f, &len) :
	    filter_to_subscription_request(&f, &len);
	if (enc == NULL)
		abort();
	if ((v2 ? filter_from_egress_request(&g, enc, len, &why) :
	    filter_from_subscription_request(&g, enc, len, &why)) != GRPC_OK)
		abort();
	if (!same_filter(&f, &g))
		abort();
	free(enc);
	sub_filter_free(&f);
	sub_filter_free(&g);
	return 0;
}
