/* filter: subscription requests to and from struct sub_filter. */
#ifndef LGR_WS_FILTER_H
#define LGR_WS_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "lgrws.h"

/* Decode a v2 EgressRequest/EgressBatchRequest (legacy_selector when
 * selectors is empty) or a v1 SubscriptionRequest into f. GRPC_OK, or a
 * gRPC status with *why (SPEC §7's messages) and f left empty. */
int filter_from_egress_request(struct sub_filter *f, const uint8_t *p,
    size_t n, const char **why);
int filter_from_subscription_request(struct sub_filter *f, const uint8_t *p,
    size_t n, const char **why);

/* Encode f as the request an upstream gets; malloc'd, NULL on ENOMEM. */
uint8_t *filter_to_egress_request(const struct sub_filter *f, size_t *len);
uint8_t *filter_to_subscription_request(const struct sub_filter *f,
    size_t *len);

#endif
